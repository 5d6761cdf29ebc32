"""Differential testing of the Jinja engine on random expressions (not run by go test).

usage: python3 testdata/chattemplates/random_expressions.py N SEED > /dev/null  (writes /tmp/ct_rand/cases.json)
Renders N random expressions and loops over a pool of values with transformers' environment; then
CHATTEMPLATE_RANDOM_CASES=/tmp/ct_rand/cases.json go test ./shared/chattemplate -run TestRandomExpressions Seeds 1-8 x 3000 cases
left only unmatchable differences: generator reprs (Python prints a memory address) and Markup.
"""
import json, os, random, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as g
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
VARS = {"s": "Hello, World é", "e": "", "ws": "  a b\n c  ", "n": 3, "z": 0, "neg": -7, "f": 2.5, "t": True, "no": None,
        "l": [3, 1, 2], "ls": ["b", "A", "c"], "lm": [1, "a", None, 2.5], "d": {"role": "user", "content": "Hi", "n": 2},
        "dl": [{"role": "user", "content": "a", "k": 1}, {"role": "assistant", "content": "b"}, {"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "nested": {"a": {"b": [1, {"c": "deep"}]}}}
ATOMS = ["s", "e", "ws", "n", "z", "neg", "f", "t", "no", "l", "ls", "lm", "d", "dl", "nested", "undef", "1", "0", "-1", "2.0", "'x'", "''", "'a,b'", "none", "true", "false", "[]", "[1, 2]", "{}", "{'k': 1}", "(1, 'a')", "d.role", "d['content']", "dl[0]", "dl[-1].content", "l[1:]", "s[::-1]", "s[2]", "nested.a.b[1].c", "d.missing", "l[10]"]
FILTERS = ["length", "upper", "lower", "trim", "first", "last", "list", "string", "int", "float", "abs", "sort", "reverse", "unique", "join", "join(', ')", "tojson", "tojson(indent=2)", "default('D')", "default('D', true)", "capitalize", "title", "count", "items", "dictsort", "sum", "min", "max", "round", "round(1)", "replace('a', 'X')", "indent(2)", "wordcount", "center(9)", "batch(2)|list", "map('string')|list", "select|list", "reject|list", "selectattr('role')|list", "rejectattr('role', 'eq', 'user')|list", "map(attribute='role')|list", "e", "safe", "truncate(5)", "format(1)", "striptags", "d"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "sequence", "iterable", "callable", "odd", "even", "divisibleby(2)", "true", "false", "boolean", "lower", "upper", "in([1, 2, 3])", "eq(1)", "sameas(none)"]
BIN = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"]
METHODS = ["strip()", "lstrip()", "rstrip(' c')", "split()", "split(',')", "split(' ', 1)", "rsplit(' ', 1)", "upper()", "lower()", "title()", "startswith('H')", "endswith(('x', 'é'))", "replace('l', 'L')", "find('o')", "count('l')", "splitlines()", "capitalize()", "isdigit()", "get('role')", "get('zz', 0)", "items()", "keys()", "values()", "index(1)", "zfill(5)", "format(1, 2)"]

def expr(depth=0):
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(ATOMS)
    if r < 0.5:
        return f"({expr(depth+1)}) | {rng.choice(FILTERS)}"
    if r < 0.6:
        return f"({expr(depth+1)}) is {rng.choice(['', 'not '])}{rng.choice(TESTS)}"
    if r < 0.8:
        return f"({expr(depth+1)}) {rng.choice(BIN)} ({expr(depth+1)})"
    if r < 0.9:
        return f"({expr(depth+1)}).{rng.choice(METHODS)}"
    return f"({expr(depth+1)}) if ({expr(depth+1)}) else ({expr(depth+1)})"

out = []
for i in range(int(sys.argv[1])):
    src = "{{ " + expr() + " }}"
    if rng.random() < 0.2:
        src = "{% for x in " + expr() + " %}[{{ x }}|{{ loop.index }}]{% else %}E{% endfor %}"
    import copy; V = copy.deepcopy(VARS)
    case = {"src": src, "vars": copy.deepcopy(VARS)}
    try:
        case["text"] = g.ENV.from_string(src).render(**V)
    except Exception as ex:
        case["error"] = str(ex); case["error_type"] = type(ex).__name__
    out.append(case)
os.makedirs("/tmp/ct_rand", exist_ok=True)
json.dump(out, open("/tmp/ct_rand/cases.json", "w"), ensure_ascii=False)
print(len(out), sum('error' in c for c in out))
