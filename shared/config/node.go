package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// node is a YAML value with its position, after anchors, aliases, merge keys
// and tags are resolved. The decoder works on nodes rather than on the
// parser's AST so that command-line overrides can be spliced in as nodes of
// their own, with the flag as their "position".
type node struct {
	kind    nodeKind
	scalar  scalarKind // for kindScalar: the type YAML gave the value
	text    string     // scalar text as written (strings unquoted)
	items   []*node    // kindSeq
	entries []entry    // kindMap, in source order
	pos     position
}

type nodeKind int

const (
	kindNull nodeKind = iota
	kindScalar
	kindSeq
	kindMap
)

type scalarKind int

const (
	scalarString scalarKind = iota
	scalarInt
	scalarFloat
	scalarBool
)

type entry struct {
	key    string
	keyPos position
	value  *node
}

// position is where a node came from: a file line and column, or a
// command-line flag (flag != "").
type position struct {
	file   string
	line   int
	column int
	flag   string
}

func (n *node) describe() string {
	switch n.kind {
	case kindNull:
		return "null"
	case kindSeq:
		return "a list"
	case kindMap:
		return "a mapping"
	}
	switch n.scalar {
	case scalarInt:
		return "an integer (" + n.text + ")"
	case scalarFloat:
		return "a number (" + n.text + ")"
	case scalarBool:
		return "a boolean (" + n.text + ")"
	}
	return strconv.Quote(n.text)
}

// lookup returns the value of key in a mapping node, or nil.
func (n *node) lookup(key string) *node {
	if n == nil || n.kind != kindMap {
		return nil
	}
	for _, e := range n.entries {
		if e.key == key {
			return e.value
		}
	}
	return nil
}

// maxAliasExpansion bounds the nodes produced by alias expansion, so that a
// "billion laughs" document is an error rather than an exhausted machine.
const maxAliasExpansion = 100_000

// maxDepth bounds nesting; no real config nests deeper than a handful.
const maxDepth = 64

// parseYAML parses one YAML document into a node. An empty document gives a
// null node. Syntax errors come back as an *Error with the parser's position.
func parseYAML(file string, data []byte) (*node, error) {
	if !utf8.Valid(data) {
		return nil, &Error{Issues: []Issue{invalidUTF8(file, data)}}
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, &Error{Issues: []Issue{syntaxIssue(file, err)}}
	}
	var body ast.Node
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			tk := doc.Body.GetToken()
			is := Issue{File: file, Message: "more than one YAML document: a config is a single mapping"}
			if tk != nil {
				is.Line, is.Column = tk.Position.Line, tk.Position.Column
			}
			return nil, &Error{Issues: []Issue{is}}
		}
		body = doc.Body
	}
	if body == nil {
		return &node{kind: kindNull, pos: position{file: file}}, nil
	}
	c := converter{file: file, anchors: map[string]ast.Node{}}
	n, err := c.convert(body, 0)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// invalidUTF8 points at the first byte that is not UTF-8: YAML text is
// Unicode, and such bytes could not be written back out.
func invalidUTF8(file string, data []byte) Issue {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return Issue{File: file, Line: line, Column: col, Message: "the text is not valid UTF-8"}
}

func syntaxIssue(file string, err error) Issue {
	var perr interface {
		GetToken() *token.Token
		GetMessage() string
	}
	is := Issue{File: file, Message: "YAML syntax error: " + err.Error()}
	if errors.As(err, &perr) {
		is.Message = "YAML syntax error: " + perr.GetMessage()
		if tk := perr.GetToken(); tk != nil && tk.Position != nil {
			is.Line, is.Column = tk.Position.Line, tk.Position.Column
		}
	}
	return is
}

type converter struct {
	file     string
	anchors  map[string]ast.Node
	produced int
}

func (c *converter) pos(n ast.Node) position {
	p := position{file: c.file}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		p.line, p.column = tk.Position.Line, tk.Position.Column
	}
	return p
}

func (c *converter) fail(n ast.Node, format string, args ...any) error {
	p := c.pos(n)
	return &Error{Issues: []Issue{{File: p.file, Line: p.line, Column: p.column, Message: fmt.Sprintf(format, args...)}}}
}

func (c *converter) convert(n ast.Node, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, c.fail(n, "the document nests deeper than %d levels", maxDepth)
	}
	c.produced++
	if c.produced > maxAliasExpansion {
		return nil, c.fail(n, "the document expands to more than %d values (aliases)", maxAliasExpansion)
	}
	switch v := n.(type) {
	case nil:
		return &node{kind: kindNull, pos: position{file: c.file}}, nil
	case *ast.NullNode:
		return &node{kind: kindNull, pos: c.pos(n)}, nil
	case *ast.StringNode:
		return &node{kind: kindScalar, scalar: scalarString, text: v.Value, pos: c.pos(n)}, nil
	case *ast.LiteralNode:
		text := ""
		if v.Value != nil {
			text = v.Value.Value
		}
		return &node{kind: kindScalar, scalar: scalarString, text: text, pos: c.pos(n)}, nil
	case *ast.IntegerNode:
		return &node{kind: kindScalar, scalar: scalarInt, text: v.GetToken().Value, pos: c.pos(n)}, nil
	case *ast.FloatNode:
		return &node{kind: kindScalar, scalar: scalarFloat, text: v.GetToken().Value, pos: c.pos(n)}, nil
	case *ast.InfinityNode, *ast.NanNode:
		return &node{kind: kindScalar, scalar: scalarFloat, text: n.GetToken().Value, pos: c.pos(n)}, nil
	case *ast.BoolNode:
		return &node{kind: kindScalar, scalar: scalarBool, text: strconv.FormatBool(v.Value), pos: c.pos(n)}, nil
	case *ast.TagNode:
		inner, err := c.convert(v.Value, depth+1)
		if err != nil {
			return nil, err
		}
		return c.applyTag(v, inner)
	case *ast.AnchorNode:
		if name := anchorName(v.Name); name != "" {
			c.anchors[name] = v.Value
		}
		return c.convert(v.Value, depth+1)
	case *ast.AliasNode:
		name := anchorName(v.Value)
		target, ok := c.anchors[name]
		if !ok {
			return nil, c.fail(n, "alias *%s refers to no anchor defined before it", name)
		}
		return c.convert(target, depth+1)
	case *ast.SequenceNode:
		out := &node{kind: kindSeq, pos: c.pos(n)}
		for _, item := range v.Values {
			cn, err := c.convert(item, depth+1)
			if err != nil {
				return nil, err
			}
			out.items = append(out.items, cn)
		}
		return out, nil
	case *ast.MappingNode:
		out := &node{kind: kindMap, pos: c.pos(n)}
		for _, mv := range v.Values {
			if err := c.addEntry(out, mv, depth); err != nil {
				return nil, err
			}
		}
		return out, nil
	case *ast.MappingValueNode:
		out := &node{kind: kindMap, pos: c.pos(n)}
		if err := c.addEntry(out, v, depth); err != nil {
			return nil, err
		}
		return out, nil
	case *ast.CommentGroupNode:
		return &node{kind: kindNull, pos: c.pos(n)}, nil
	}
	return nil, c.fail(n, "unsupported YAML construct (%s)", n.Type())
}

func anchorName(n ast.Node) string {
	if n == nil {
		return ""
	}
	return n.GetToken().Value
}

func (c *converter) addEntry(out *node, mv *ast.MappingValueNode, depth int) error {
	if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
		merged, err := c.convert(mv.Value, depth+1)
		if err != nil {
			return err
		}
		sources := []*node{merged}
		if merged.kind == kindSeq {
			sources = merged.items
		}
		for _, src := range sources {
			if src.kind != kindMap {
				return c.fail(mv.Key, "merge key << needs a mapping or a list of mappings")
			}
			for _, e := range src.entries {
				if out.lookup(e.key) == nil {
					out.entries = append(out.entries, e)
				}
			}
		}
		return nil
	}
	keyNode, err := c.convert(mv.Key, depth+1)
	if err != nil {
		return err
	}
	if keyNode.kind != kindScalar {
		return c.fail(mv.Key, "a mapping key must be a plain value, not %s", keyNode.describe())
	}
	value, err := c.convert(mv.Value, depth+1)
	if err != nil {
		return err
	}
	// A key given explicitly wins over one brought in by a merge key.
	for i, e := range out.entries {
		if e.key == keyNode.text {
			out.entries[i] = entry{key: keyNode.text, keyPos: keyNode.pos, value: value}
			return nil
		}
	}
	out.entries = append(out.entries, entry{key: keyNode.text, keyPos: keyNode.pos, value: value})
	return nil
}

func (c *converter) applyTag(t *ast.TagNode, inner *node) (*node, error) {
	tag := t.Start.Value
	switch tag {
	case "!!str":
		if inner.kind == kindScalar {
			inner.scalar = scalarString
		}
	case "!!int":
		if inner.kind != kindScalar {
			return nil, c.fail(t, "!!int on %s", inner.describe())
		}
		inner.scalar = scalarInt
	case "!!float":
		if inner.kind != kindScalar {
			return nil, c.fail(t, "!!float on %s", inner.describe())
		}
		inner.scalar = scalarFloat
	case "!!bool":
		if inner.kind != kindScalar {
			return nil, c.fail(t, "!!bool on %s", inner.describe())
		}
		inner.scalar = scalarBool
	case "!!null":
		inner = &node{kind: kindNull, pos: inner.pos}
	case "!!map", "!!seq", "!!binary", "!!timestamp", "!!set", "!!omap":
	default:
		if strings.HasPrefix(tag, "!") {
			return nil, c.fail(t, "unknown YAML tag %s", tag)
		}
	}
	return inner, nil
}
