package jinja

import "strings"

// Iterator is a Python iterable that is not a list: what Jinja2's
// generator filters (map, select, selectattr, reject, rejectattr, unique,
// items, batch) and reverse return, and dict views (dict.items(),
// keys(), values()). Generators and reverse iterators are lazy (errors
// surface when they are consumed), always true, have no len() and are
// consumed once, as in Python; dict views are sized, reusable and print
// their items.
type Iterator struct {
	typeName string // Python type: "generator", "list_reverseiterator", "dict_items", ...
	label    string // the generator function's name in its repr
	produce  func() ([]any, error)
	items    []any
	made     bool
	pos      int
	view     bool
}

func newGenerator(label string, produce func() ([]any, error)) *Iterator {
	return &Iterator{typeName: "generator", label: label, produce: produce}
}

func newView(typeName string, items []any) *Iterator {
	return &Iterator{typeName: typeName, items: items, made: true, view: true}
}

func (it *Iterator) make() error {
	if it.made {
		return nil
	}
	items, err := it.produce()
	it.made, it.items = true, items
	return err
}

// rest consumes and returns what the iterator has left.
func (it *Iterator) rest() ([]any, error) {
	if err := it.make(); err != nil {
		return nil, err
	}
	if it.view {
		return it.items, nil
	}
	out := it.items[it.pos:]
	it.pos = len(it.items)
	return out, nil
}

// next consumes one item.
func (it *Iterator) next() (any, bool, error) {
	if err := it.make(); err != nil {
		return nil, false, err
	}
	if it.view {
		if len(it.items) == 0 {
			return nil, false, nil
		}
		return it.items[0], true, nil
	}
	if it.pos >= len(it.items) {
		return nil, false, nil
	}
	it.pos++
	return it.items[it.pos-1], true, nil
}

func (it *Iterator) repr(b *strings.Builder, depth int) {
	if !it.view {
		if it.typeName == "generator" {
			b.WriteString("<generator object " + it.label + ">")
		} else {
			b.WriteString("<" + it.typeName + " object>")
		}
		return
	}
	b.WriteString(it.typeName + "(")
	writeRepr(b, it.items, true, depth+1)
	b.WriteString(")")
}
