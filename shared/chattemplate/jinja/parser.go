package jinja

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Statement nodes.
type (
	node any

	textNode  struct{ text string }
	printNode struct{ x expr }
	ifNode    struct {
		tests  []expr
		bodies [][]node
		els    []node
	}
	forNode struct {
		target    target
		iter      expr
		cond      expr // optional "if" filter on the items
		body, els []node
		recursive bool
		line      int
	}
	setNode struct {
		target target
		x      expr
	}
	setBlockNode struct {
		target target
		filter *filterExpr // optional, applied to the captured text
		body   []node
	}
	macroNode     struct{ m *macroDef }
	callBlockNode struct {
		call   *callExpr
		caller *macroDef
	}
	filterBlockNode struct {
		filter *filterExpr
		body   []node
	}
	withNode struct {
		targets []target
		values  []expr
		body    []node
	}
	generationNode struct{ body []node }
	breakNode      struct{}
	continueNode   struct{}
)

// target is the left side of an assignment or a for loop: a name, a tuple
// of targets, or a namespace attribute.
type target struct {
	name  string
	attr  string // ns.attr when set
	tuple []target
}

type macroDef struct {
	name     string
	params   []string
	defaults []expr // aligned with the last len(defaults) params
	body     []node
	// Whether the body uses caller, varargs or kwargs (Jinja2 only accepts
	// extra arguments when it does).
	usesCaller, usesVarargs, usesKwargs bool
}

// Expression nodes.
type (
	expr any

	constExpr struct{ v any }
	nameExpr  struct {
		name string
		line int
	}
	getattrExpr struct {
		obj  expr
		attr string
	}
	getitemExpr struct{ obj, key expr }
	sliceExpr   struct{ start, stop, step expr } // only as a getitem key
	callExpr    struct {
		fn              expr
		args            []expr
		kwargs          []kwargExpr
		dynArgs, dynKws expr
	}
	kwargExpr struct {
		name string
		x    expr
	}
	filterExpr struct {
		x    expr // nil in a filter block
		name string
		call callExpr
		line int
	}
	testExpr struct {
		x    expr
		name string
		call callExpr
		line int
	}
	unaryExpr struct {
		op string // "not", "-", "+"
		x  expr
	}
	binExpr struct {
		op   string
		l, r expr
	}
	concatExpr  struct{ parts []expr }
	compareExpr struct {
		first expr
		ops   []string
		rest  []expr
	}
	condExpr struct {
		test, then, els expr
		line            int
	}
	listExpr  struct{ items []expr }
	tupleExpr struct{ items []expr }
	dictExpr  struct{ keys, vals []expr }
)

type parser struct {
	toks  []token
	pos   int
	depth int
}

// maxNesting bounds how deeply expressions nest, so hostile input cannot
// exhaust the stack (CPython's own parser stops near 200 too).
const maxNesting = 200

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxNesting {
		return p.fail(p.cur(), "expression nested too deeply")
	}
	return nil
}

func parse(src string) ([]node, error) {
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	body, err := p.subparse(nil)
	if err != nil {
		return nil, err
	}
	if t := p.cur(); t.kind != tkEOF {
		return nil, p.fail(t, "unexpected %s", t.describe())
	}
	return body, nil
}

func (p *parser) cur() token  { return p.toks[p.pos] }
func (p *parser) look() token { return p.toks[min(p.pos+1, len(p.toks)-1)] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if p.pos < len(p.toks)-1 {
		p.pos++
	}
	return t
}

func (p *parser) fail(t token, format string, args ...any) error {
	return &Error{Kind: SyntaxError, Line: t.line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) isName(name string) bool {
	t := p.cur()
	return t.kind == tkName && t.val == name
}

func (p *parser) isOp(op string) bool {
	t := p.cur()
	return t.kind == tkOp && t.val == op
}

func (p *parser) skipName(name string) bool {
	if p.isName(name) {
		p.next()
		return true
	}
	return false
}

func (p *parser) skipOp(op string) bool {
	if p.isOp(op) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expectOp(op string) error {
	if !p.skipOp(op) {
		t := p.cur()
		return p.fail(t, "expected token '%s', got %s", op, t.describe())
	}
	return nil
}

func (p *parser) expectName() (string, error) {
	t := p.cur()
	if t.kind != tkName {
		return "", p.fail(t, "expected token 'name', got %s", t.describe())
	}
	p.next()
	return t.val, nil
}

func (p *parser) expectKind(k tokenKind) error {
	t := p.cur()
	if t.kind != k {
		if t.kind == tkEOF {
			return p.fail(t, "unexpected end of template, expected '%s'", k)
		}
		return p.fail(t, "expected token '%s', got %s", k, t.describe())
	}
	p.next()
	return nil
}

// subparse reads nodes until a block tag whose first name is one of ends
// (left unconsumed, positioned on that name) or the end of the template.
func (p *parser) subparse(ends []string) ([]node, error) {
	var body []node
	for {
		t := p.cur()
		switch t.kind {
		case tkEOF:
			return body, nil
		case tkData:
			p.next()
			body = append(body, &textNode{text: t.val})
		case tkVarBegin:
			p.next()
			x, err := p.parseTuple(false, true, nil, false)
			if err != nil {
				return nil, err
			}
			if err := p.expectKind(tkVarEnd); err != nil {
				return nil, err
			}
			body = append(body, &printNode{x: x})
		case tkBlockBegin:
			p.next()
			if n := p.cur(); n.kind == tkName {
				for _, e := range ends {
					if n.val == e {
						return body, nil
					}
				}
			}
			st, err := p.parseStatement()
			if err != nil {
				return nil, err
			}
			if st != nil {
				body = append(body, st)
			}
			if err := p.expectKind(tkBlockEnd); err != nil {
				return nil, err
			}
		default:
			return nil, p.fail(t, "unexpected %s", t.describe())
		}
	}
}

// statements reads the body of a block statement up to one of ends.
func (p *parser) statements(ends []string, dropNeedle bool) ([]node, error) {
	p.skipOp(":")
	if err := p.expectKind(tkBlockEnd); err != nil {
		return nil, err
	}
	body, err := p.subparse(ends)
	if err != nil {
		return nil, err
	}
	if t := p.cur(); t.kind == tkEOF {
		return nil, p.fail(t, "Unexpected end of template. Jinja was looking for the following tags: %s. The innermost block that needs to be closed is '%s'.",
			quoteList(ends), blockOpener(ends))
	}
	if dropNeedle {
		p.next()
	}
	return body, nil
}

func quoteList(ends []string) string {
	q := make([]string, len(ends))
	for i, e := range ends {
		q[i] = "'" + e + "'"
	}
	return strings.Join(q, " or ")
}

func blockOpener(ends []string) string {
	return strings.TrimPrefix(ends[len(ends)-1], "end")
}

func (p *parser) parseStatement() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	t := p.cur()
	if t.kind != tkName {
		return nil, p.fail(t, "tag name expected")
	}
	switch t.val {
	case "if":
		return p.parseIf()
	case "for":
		return p.parseFor()
	case "set":
		return p.parseSet()
	case "macro":
		return p.parseMacro()
	case "call":
		return p.parseCallBlock()
	case "filter":
		return p.parseFilterBlock()
	case "with":
		return p.parseWith()
	case "block":
		return p.parseBlock()
	case "print":
		p.next()
		x, err := p.parseTuple(false, true, nil, false)
		if err != nil {
			return nil, err
		}
		return &printNode{x: x}, nil
	case "generation":
		p.next()
		body, err := p.statements([]string{"endgeneration"}, true)
		if err != nil {
			return nil, err
		}
		return &generationNode{body: body}, nil
	case "break":
		p.next()
		return &breakNode{}, nil
	case "continue":
		p.next()
		return &continueNode{}, nil
	}
	return nil, p.fail(t, "Encountered unknown tag '%s'.", t.val)
}

func (p *parser) parseIf() (node, error) {
	p.next()
	n := &ifNode{}
	for {
		test, err := p.parseTuple(false, false, nil, false)
		if err != nil {
			return nil, err
		}
		body, err := p.statements([]string{"elif", "else", "endif"}, false)
		if err != nil {
			return nil, err
		}
		n.tests = append(n.tests, test)
		n.bodies = append(n.bodies, body)
		t := p.next()
		if t.val == "elif" {
			continue
		}
		if t.val == "else" {
			n.els, err = p.statements([]string{"endif"}, true)
			if err != nil {
				return nil, err
			}
		}
		return n, nil
	}
}

func (p *parser) parseFor() (node, error) {
	line := p.next().line
	tgt, err := p.parseAssignTarget(true, false, []string{"in"})
	if err != nil {
		return nil, err
	}
	if !p.skipName("in") {
		t := p.cur()
		return nil, p.fail(t, "expected token 'in', got %s", t.describe())
	}
	iter, err := p.parseTuple(false, false, []string{"recursive"}, false)
	if err != nil {
		return nil, err
	}
	n := &forNode{target: tgt, iter: iter, line: line}
	if p.skipName("if") {
		if n.cond, err = p.parseExpression(true); err != nil {
			return nil, err
		}
	}
	n.recursive = p.skipName("recursive")
	if n.body, err = p.statements([]string{"endfor", "else"}, false); err != nil {
		return nil, err
	}
	if p.next().val == "else" {
		if n.els, err = p.statements([]string{"endfor"}, true); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (p *parser) parseSet() (node, error) {
	p.next()
	tgt, err := p.parseAssignTarget(true, true, nil)
	if err != nil {
		return nil, err
	}
	if p.skipOp("=") {
		x, err := p.parseTuple(false, true, nil, false)
		if err != nil {
			return nil, err
		}
		return &setNode{target: tgt, x: x}, nil
	}
	n := &setBlockNode{target: tgt}
	if p.isOp("|") {
		f, err := p.parseFilter(nil, false)
		if err != nil {
			return nil, err
		}
		n.filter = f.(*filterExpr)
	}
	if n.body, err = p.statements([]string{"endset"}, true); err != nil {
		return nil, err
	}
	return n, nil
}

// parseAssignTarget reads a for/set target: a name, a tuple of names, or
// (for set) ns.attr.
func (p *parser) parseAssignTarget(withTuple, withNamespace bool, extraEnds []string) (target, error) {
	t := p.cur()
	if withNamespace && t.kind == tkName && p.look().kind == tkOp && p.look().val == "." {
		p.next()
		p.next()
		attr, err := p.expectName()
		if err != nil {
			return target{}, err
		}
		return target{name: t.val, attr: attr}, nil
	}
	var x expr
	var err error
	if withTuple {
		x, err = p.parseTuple(true, true, extraEnds, false)
	} else {
		x, err = p.parsePrimary()
	}
	if err != nil {
		return target{}, err
	}
	return toTarget(p, t, x)
}

func toTarget(p *parser, t token, x expr) (target, error) {
	switch n := x.(type) {
	case *nameExpr:
		if n.name == "true" || n.name == "false" || n.name == "none" || n.name == "True" || n.name == "False" || n.name == "None" {
			break
		}
		return target{name: n.name}, nil
	case *tupleExpr:
		tg := target{tuple: []target{}}
		for _, it := range n.items {
			sub, err := toTarget(p, t, it)
			if err != nil {
				return target{}, err
			}
			tg.tuple = append(tg.tuple, sub)
		}
		return tg, nil
	}
	return target{}, p.fail(t, "can't assign to %s", nodeTypeName(x))
}

func nodeTypeName(x expr) string {
	switch x.(type) {
	case *constExpr:
		return "'Const'"
	case *listExpr:
		return "'List'"
	case *dictExpr:
		return "'Dict'"
	}
	return "'" + strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", x), "*jinja."), "Expr") + "'"
}

func (p *parser) parseMacro() (node, error) {
	p.next()
	name, err := p.expectName()
	if err != nil {
		return nil, err
	}
	m := &macroDef{name: name}
	if err := p.parseSignature(m); err != nil {
		return nil, err
	}
	if m.body, err = p.statements([]string{"endmacro"}, true); err != nil {
		return nil, err
	}
	scanMacroUses(m)
	return &macroNode{m: m}, nil
}

func (p *parser) parseSignature(m *macroDef) error {
	if err := p.expectOp("("); err != nil {
		return err
	}
	for !p.isOp(")") {
		if len(m.params) > 0 {
			if err := p.expectOp(","); err != nil {
				return err
			}
		}
		name, err := p.expectName()
		if err != nil {
			return err
		}
		m.params = append(m.params, name)
		if p.skipOp("=") {
			d, err := p.parseExpression(true)
			if err != nil {
				return err
			}
			m.defaults = append(m.defaults, d)
		} else if len(m.defaults) > 0 {
			return p.fail(p.cur(), "non-default argument follows default argument")
		}
	}
	p.next()
	return nil
}

func (p *parser) parseCallBlock() (node, error) {
	p.next()
	caller := &macroDef{name: "caller"}
	if p.isOp("(") {
		if err := p.parseSignature(caller); err != nil {
			return nil, err
		}
	}
	x, err := p.parseExpression(true)
	if err != nil {
		return nil, err
	}
	call, ok := x.(*callExpr)
	if !ok {
		return nil, p.fail(p.cur(), "expected call")
	}
	if caller.body, err = p.statements([]string{"endcall"}, true); err != nil {
		return nil, err
	}
	scanMacroUses(caller)
	return &callBlockNode{call: call, caller: caller}, nil
}

func (p *parser) parseFilterBlock() (node, error) {
	p.next()
	f, err := p.parseFilter(nil, true)
	if err != nil {
		return nil, err
	}
	n := &filterBlockNode{filter: f.(*filterExpr)}
	if n.body, err = p.statements([]string{"endfilter"}, true); err != nil {
		return nil, err
	}
	return n, nil
}

func (p *parser) parseWith() (node, error) {
	p.next()
	n := &withNode{}
	for p.cur().kind != tkBlockEnd {
		if len(n.targets) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		tgt, err := p.parseAssignTarget(false, false, nil)
		if err != nil {
			return nil, err
		}
		if err := p.expectOp("="); err != nil {
			return nil, err
		}
		v, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		n.targets = append(n.targets, tgt)
		n.values = append(n.values, v)
	}
	var err error
	if n.body, err = p.statements([]string{"endwith"}, true); err != nil {
		return nil, err
	}
	return n, nil
}

// parseBlock reads {% block name %}: without template inheritance a block
// renders in place.
func (p *parser) parseBlock() (node, error) {
	p.next()
	if _, err := p.expectName(); err != nil {
		return nil, err
	}
	p.skipName("scoped")
	p.skipName("required")
	body, err := p.statements([]string{"endblock"}, true)
	if err != nil {
		return nil, err
	}
	if p.cur().kind == tkName {
		p.next()
	}
	return &withNode{body: body}, nil
}

// parseTuple reads an expression or a comma-separated tuple of them.
// simplified allows only primaries (assignment targets); withCond allows
// inline if-expressions.
func (p *parser) parseTuple(simplified, withCond bool, extraEnds []string, explicitParens bool) (expr, error) {
	var items []expr
	isTuple := false
	for {
		if len(items) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		if p.isTupleEnd(extraEnds) {
			break
		}
		var x expr
		var err error
		switch {
		case simplified:
			x, err = p.parsePrimary()
		default:
			x, err = p.parseExpression(withCond)
		}
		if err != nil {
			return nil, err
		}
		items = append(items, x)
		if p.isOp(",") {
			isTuple = true
		} else {
			break
		}
	}
	if !isTuple {
		if len(items) > 0 {
			return items[0], nil
		}
		if !explicitParens {
			t := p.cur()
			return nil, p.fail(t, "Expected an expression, got %s", t.describe())
		}
	}
	return &tupleExpr{items: items}, nil
}

func (p *parser) isTupleEnd(extraEnds []string) bool {
	t := p.cur()
	switch {
	case t.kind == tkVarEnd || t.kind == tkBlockEnd || t.kind == tkEOF:
		return true
	case t.kind == tkOp && t.val == ")":
		return true
	case t.kind == tkName:
		for _, e := range extraEnds {
			if t.val == e {
				return true
			}
		}
	}
	return false
}

func (p *parser) parseExpression(withCond bool) (expr, error) {
	if withCond {
		return p.parseCondExpr()
	}
	return p.parseOr()
}

func (p *parser) parseCondExpr() (expr, error) {
	x, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	for p.isName("if") {
		line := p.next().line
		test, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		var els expr
		if p.skipName("else") {
			if els, err = p.parseCondExpr(); err != nil {
				return nil, err
			}
		}
		x = &condExpr{test: test, then: x, els: els, line: line}
	}
	return x, nil
}

func (p *parser) parseOr() (expr, error) {
	l, err := p.parseAnd()
	for err == nil && p.skipName("or") {
		var r expr
		r, err = p.parseAnd()
		l = &binExpr{op: "or", l: l, r: r}
	}
	return l, err
}

func (p *parser) parseAnd() (expr, error) {
	l, err := p.parseNot()
	for err == nil && p.skipName("and") {
		var r expr
		r, err = p.parseNot()
		l = &binExpr{op: "and", l: l, r: r}
	}
	return l, err
}

func (p *parser) parseNot() (expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if p.skipName("not") {
		x, err := p.parseNot()
		return &unaryExpr{op: "not", x: x}, err
	}
	return p.parseCompare()
}

func (p *parser) parseCompare() (expr, error) {
	first, err := p.parseMath1()
	if err != nil {
		return nil, err
	}
	c := &compareExpr{first: first}
	for {
		t := p.cur()
		var op string
		switch {
		case t.kind == tkOp && (t.val == "==" || t.val == "!=" || t.val == "<" || t.val == "<=" || t.val == ">" || t.val == ">="):
			op = t.val
			p.next()
		case p.isName("in"):
			op = "in"
			p.next()
		case p.isName("not") && p.look().kind == tkName && p.look().val == "in":
			op = "notin"
			p.next()
			p.next()
		}
		if op == "" {
			break
		}
		r, err := p.parseMath1()
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, op)
		c.rest = append(c.rest, r)
	}
	if len(c.ops) == 0 {
		return first, nil
	}
	return c, nil
}

func (p *parser) parseMath1() (expr, error) {
	l, err := p.parseConcat()
	for err == nil && (p.isOp("+") || p.isOp("-")) {
		op := p.next().val
		var r expr
		r, err = p.parseConcat()
		l = &binExpr{op: op, l: l, r: r}
	}
	return l, err
}

func (p *parser) parseConcat() (expr, error) {
	x, err := p.parseMath2()
	if err != nil || !p.isOp("~") {
		return x, err
	}
	parts := []expr{x}
	for p.skipOp("~") {
		x, err := p.parseMath2()
		if err != nil {
			return nil, err
		}
		parts = append(parts, x)
	}
	return &concatExpr{parts: parts}, nil
}

func (p *parser) parseMath2() (expr, error) {
	l, err := p.parsePow()
	for err == nil && (p.isOp("*") || p.isOp("/") || p.isOp("//") || p.isOp("%")) {
		op := p.next().val
		var r expr
		r, err = p.parsePow()
		l = &binExpr{op: op, l: l, r: r}
	}
	return l, err
}

func (p *parser) parsePow() (expr, error) {
	l, err := p.parseUnary(true)
	for err == nil && p.isOp("**") {
		p.next()
		var r expr
		r, err = p.parseUnary(true)
		l = &binExpr{op: "**", l: l, r: r}
	}
	return l, err
}

func (p *parser) parseUnary(withFilter bool) (expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	var x expr
	var err error
	switch {
	case p.isOp("-") || p.isOp("+"):
		op := p.next().val
		inner, err := p.parseUnary(false)
		if err != nil {
			return nil, err
		}
		x = &unaryExpr{op: op, x: inner}
	default:
		if x, err = p.parsePrimary(); err != nil {
			return nil, err
		}
		if x, err = p.parsePostfix(x); err != nil {
			return nil, err
		}
	}
	if withFilter {
		return p.parseFilterExpr(x)
	}
	return x, nil
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.cur()
	switch t.kind {
	case tkName:
		p.next()
		switch t.val {
		case "true", "True":
			return &constExpr{v: true}, nil
		case "false", "False":
			return &constExpr{v: false}, nil
		case "none", "None":
			return &constExpr{v: nil}, nil
		}
		return &nameExpr{name: t.val, line: t.line}, nil
	case tkString:
		p.next()
		s := t.val
		for p.cur().kind == tkString {
			s += p.next().val
		}
		return &constExpr{v: s}, nil
	case tkInt:
		p.next()
		text := strings.ReplaceAll(t.val, "_", "")
		if n, err := strconv.ParseInt(text, 0, 64); err == nil {
			return &constExpr{v: n}, nil
		}
		if bi, ok := new(big.Int).SetString(text, 0); ok {
			f, _ := new(big.Float).SetInt(bi).Float64()
			return &constExpr{v: f}, nil
		}
		return nil, p.fail(t, "invalid integer %s", t.val)
	case tkFloat:
		p.next()
		f, err := strconv.ParseFloat(strings.ReplaceAll(t.val, "_", ""), 64)
		if err != nil {
			return nil, p.fail(t, "invalid float %s", t.val)
		}
		return &constExpr{v: f}, nil
	case tkOp:
		switch t.val {
		case "(":
			p.next()
			x, err := p.parseTuple(false, true, nil, true)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return x, nil
		case "[":
			return p.parseList()
		case "{":
			return p.parseDict()
		}
	}
	return nil, p.fail(t, "unexpected %s", t.describe())
}

func (p *parser) parseList() (expr, error) {
	p.next()
	l := &listExpr{}
	for !p.isOp("]") {
		if len(l.items) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
			if p.isOp("]") {
				break
			}
		}
		x, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		l.items = append(l.items, x)
	}
	p.next()
	return l, nil
}

func (p *parser) parseDict() (expr, error) {
	p.next()
	d := &dictExpr{}
	for !p.isOp("}") {
		if len(d.keys) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
			if p.isOp("}") {
				break
			}
		}
		k, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(":"); err != nil {
			return nil, err
		}
		v, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		d.keys = append(d.keys, k)
		d.vals = append(d.vals, v)
	}
	p.next()
	return d, nil
}

func (p *parser) parsePostfix(x expr) (expr, error) {
	for {
		var err error
		switch {
		case p.isOp(".") || p.isOp("["):
			x, err = p.parseSubscript(x)
		case p.isOp("("):
			x, err = p.parseCall(x)
		default:
			return x, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (p *parser) parseFilterExpr(x expr) (expr, error) {
	for {
		var err error
		switch {
		case p.isOp("|"):
			x, err = p.parseFilter(x, false)
		case p.isName("is"):
			x, err = p.parseTest(x)
		case p.isOp("("):
			x, err = p.parseCall(x)
		default:
			return x, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (p *parser) parseSubscript(x expr) (expr, error) {
	t := p.next()
	if t.val == "." {
		a := p.next()
		switch a.kind {
		case tkName:
			return &getattrExpr{obj: x, attr: a.val}, nil
		case tkInt:
			n, _ := strconv.ParseInt(strings.ReplaceAll(a.val, "_", ""), 0, 64)
			return &getitemExpr{obj: x, key: &constExpr{v: n}}, nil
		}
		return nil, p.fail(a, "expected name or number")
	}
	var args []expr
	for !p.isOp("]") {
		if len(args) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		a, err := p.parseSubscribed()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
	}
	p.next()
	if len(args) == 1 {
		return &getitemExpr{obj: x, key: args[0]}, nil
	}
	return &getitemExpr{obj: x, key: &tupleExpr{items: args}}, nil
}

// parseSubscribed reads an index or a start:stop:step slice.
func (p *parser) parseSubscribed() (expr, error) {
	var parts [3]expr
	if !p.isOp(":") {
		x, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		if !p.isOp(":") {
			return x, nil
		}
		parts[0] = x
	}
	p.next()
	var err error
	if !p.isOp("]") && !p.isOp(",") && !p.isOp(":") {
		if parts[1], err = p.parseExpression(true); err != nil {
			return nil, err
		}
	}
	if p.skipOp(":") {
		if !p.isOp("]") && !p.isOp(",") {
			if parts[2], err = p.parseExpression(true); err != nil {
				return nil, err
			}
		}
	}
	return &sliceExpr{start: parts[0], stop: parts[1], step: parts[2]}, nil
}

func (p *parser) parseCall(fn expr) (expr, error) {
	c, err := p.parseCallArgs()
	if err != nil {
		return nil, err
	}
	c.fn = fn
	return c, nil
}

func (p *parser) parseCallArgs() (*callExpr, error) {
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	c := &callExpr{}
	requireComma := false
	for !p.isOp(")") {
		if requireComma {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
			if p.isOp(")") {
				break
			}
		}
		switch {
		case p.isOp("*"):
			p.next()
			x, err := p.parseExpression(true)
			if err != nil {
				return nil, err
			}
			c.dynArgs = x
		case p.isOp("**"):
			p.next()
			x, err := p.parseExpression(true)
			if err != nil {
				return nil, err
			}
			c.dynKws = x
		case p.cur().kind == tkName && p.look().kind == tkOp && p.look().val == "=":
			name := p.next().val
			p.next()
			x, err := p.parseExpression(true)
			if err != nil {
				return nil, err
			}
			c.kwargs = append(c.kwargs, kwargExpr{name: name, x: x})
		default:
			if c.dynArgs != nil || c.dynKws != nil || len(c.kwargs) > 0 {
				return nil, p.fail(p.cur(), "invalid syntax for function call expression")
			}
			x, err := p.parseExpression(true)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, x)
		}
		requireComma = true
	}
	p.next()
	return c, nil
}

// parseFilter reads "| name(args)" chains; startInline reads a first
// filter without its pipe (filter blocks).
func (p *parser) parseFilter(x expr, startInline bool) (expr, error) {
	for p.isOp("|") || startInline {
		if !startInline {
			p.next()
		}
		startInline = false
		t := p.cur()
		name, err := p.expectName()
		if err != nil {
			return nil, err
		}
		for p.skipOp(".") {
			n, err := p.expectName()
			if err != nil {
				return nil, err
			}
			name += "." + n
		}
		f := &filterExpr{x: x, name: name, line: t.line}
		if p.isOp("(") {
			c, err := p.parseCallArgs()
			if err != nil {
				return nil, err
			}
			f.call = *c
		}
		x = f
	}
	return x, nil
}

func (p *parser) parseTest(x expr) (expr, error) {
	t := p.next()
	negated := p.skipName("not")
	name, err := p.expectName()
	if err != nil {
		return nil, err
	}
	for p.skipOp(".") {
		n, err := p.expectName()
		if err != nil {
			return nil, err
		}
		name += "." + n
	}
	te := &testExpr{x: x, name: name, line: t.line}
	c := p.cur()
	switch {
	case p.isOp("("):
		call, err := p.parseCallArgs()
		if err != nil {
			return nil, err
		}
		te.call = *call
	case (c.kind == tkName || c.kind == tkString || c.kind == tkInt || c.kind == tkFloat || c.kind == tkOp && (c.val == "[" || c.val == "{")) &&
		!(c.kind == tkName && (c.val == "else" || c.val == "or" || c.val == "and")):
		if c.kind == tkName && c.val == "is" {
			return nil, p.fail(c, "You cannot chain multiple tests with is")
		}
		a, err := p.parsePrimary()
		if err != nil {
			return nil, err
		}
		if a, err = p.parsePostfix(a); err != nil {
			return nil, err
		}
		te.call.args = []expr{a}
	}
	if negated {
		return &unaryExpr{op: "not", x: te}, nil
	}
	return te, nil
}

// scanMacroUses records whether a macro body reads caller, varargs or
// kwargs, which decides the extra arguments it accepts.
func scanMacroUses(m *macroDef) {
	var visit func(v any)
	visit = func(v any) {
		switch n := v.(type) {
		case *nameExpr:
			switch n.name {
			case "caller":
				m.usesCaller = true
			case "varargs":
				m.usesVarargs = true
			case "kwargs":
				m.usesKwargs = true
			}
		case []node:
			for _, c := range n {
				visit(c)
			}
		case []expr:
			for _, c := range n {
				visit(c)
			}
		case *textNode, *constExpr, nil, *breakNode, *continueNode:
		case *printNode:
			visit(n.x)
		case *ifNode:
			visit(n.tests)
			for _, b := range n.bodies {
				visit(b)
			}
			visit(n.els)
		case *forNode:
			visit(n.iter)
			visit(n.cond)
			visit(n.body)
			visit(n.els)
		case *setNode:
			visit(n.x)
		case *setBlockNode:
			visit(n.body)
			if n.filter != nil {
				visit(n.filter)
			}
		case *macroNode:
			// A nested macro has its own caller.
		case *callBlockNode:
			visit(n.call)
		case *filterBlockNode:
			visit(n.filter)
			visit(n.body)
		case *withNode:
			visit(n.values)
			visit(n.body)
		case *generationNode:
			visit(n.body)
		case *getattrExpr:
			visit(n.obj)
		case *getitemExpr:
			visit(n.obj)
			visit(n.key)
		case *sliceExpr:
			visit(n.start)
			visit(n.stop)
			visit(n.step)
		case *callExpr:
			visit(n.fn)
			visit(n.args)
			for _, k := range n.kwargs {
				visit(k.x)
			}
			visit(n.dynArgs)
			visit(n.dynKws)
		case *filterExpr:
			visit(n.x)
			visit(&n.call)
		case *testExpr:
			visit(n.x)
			visit(&n.call)
		case *unaryExpr:
			visit(n.x)
		case *binExpr:
			visit(n.l)
			visit(n.r)
		case *concatExpr:
			visit(n.parts)
		case *compareExpr:
			visit(n.first)
			visit(n.rest)
		case *condExpr:
			visit(n.test)
			visit(n.then)
			visit(n.els)
		case *listExpr:
			visit(n.items)
		case *tupleExpr:
			visit(n.items)
		case *dictExpr:
			visit(n.keys)
			visit(n.vals)
		}
	}
	visit(m.body)
}

// checkNames fails on a filter or test Jinja2 does not know, as Jinja2's
// compiler does, except inside an if statement or an inline if, where
// Jinja2 defers the failure to the render that reaches it.
func checkNames(body []node) error {
	var first error
	var visit func(v any, soft bool)
	visit = func(v any, soft bool) {
		if first != nil {
			return
		}
		switch n := v.(type) {
		case []node:
			for _, c := range n {
				visit(c, soft)
			}
		case []expr:
			for _, c := range n {
				visit(c, soft)
			}
		case *printNode:
			visit(n.x, soft)
		case *ifNode:
			visit(n.tests, true)
			for _, b := range n.bodies {
				visit(b, true)
			}
			visit(n.els, true)
		case *forNode:
			visit(n.iter, soft)
			visit(n.cond, soft)
			visit(n.body, soft)
			visit(n.els, soft)
		case *setNode:
			visit(n.x, soft)
		case *setBlockNode:
			visit(n.body, soft)
			if n.filter != nil {
				visit(n.filter, soft)
			}
		case *macroNode:
			visit(n.m.defaults, soft)
			visit(n.m.body, soft)
		case *callBlockNode:
			visit(n.call, soft)
			visit(n.caller.body, soft)
		case *filterBlockNode:
			visit(n.filter, soft)
			visit(n.body, soft)
		case *withNode:
			visit(n.values, soft)
			visit(n.body, soft)
		case *generationNode:
			visit(n.body, soft)
		case *getattrExpr:
			visit(n.obj, soft)
		case *getitemExpr:
			visit(n.obj, soft)
			visit(n.key, soft)
		case *sliceExpr:
			visit(n.start, soft)
			visit(n.stop, soft)
			visit(n.step, soft)
		case *callExpr:
			visit(n.fn, soft)
			visit(n.args, soft)
			for _, k := range n.kwargs {
				visit(k.x, soft)
			}
			visit(n.dynArgs, soft)
			visit(n.dynKws, soft)
		case *filterExpr:
			if _, ok := builtinFilters[n.name]; !ok && !soft {
				first = &Error{Kind: AssertionError, Line: n.line, Msg: fmt.Sprintf("No filter named '%s'.", n.name)}
				return
			}
			visit(n.x, soft)
			visit(&n.call, soft)
		case *testExpr:
			if _, ok := builtinTests[n.name]; !ok && !soft {
				first = &Error{Kind: AssertionError, Line: n.line, Msg: fmt.Sprintf("No test named '%s'.", n.name)}
				return
			}
			visit(n.x, soft)
			visit(&n.call, soft)
		case *unaryExpr:
			visit(n.x, soft)
		case *binExpr:
			visit(n.l, soft)
			visit(n.r, soft)
		case *concatExpr:
			visit(n.parts, soft)
		case *compareExpr:
			visit(n.first, soft)
			visit(n.rest, soft)
		case *condExpr:
			visit(n.test, true)
			visit(n.then, true)
			visit(n.els, true)
		case *listExpr:
			visit(n.items, soft)
		case *tupleExpr:
			visit(n.items, soft)
		case *dictExpr:
			visit(n.keys, soft)
			visit(n.vals, soft)
		}
	}
	visit(body, false)
	return first
}
