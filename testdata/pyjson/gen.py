# Writes cases.json: what Python's json module and repr(float) produce for the
# floats, strings and documents shared/pyjson's tests feed the Go encoder.
# Run: python3 gen.py > cases.json
import json, math, random, struct

def bits(f):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", f))[0]

rng = random.Random(20240601)
floats = [0.0, -0.0, 0.05, 16.0, 1e-5, 1e-4, 1e16, 123456.5, -2.5e-7, 0.1, 3.0, 0.00012,
          1.2345678901234568e17, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
          math.nextafter(1e-4, 0), math.nextafter(1e16, 0), 9999999999999998.0, 1e15, 1e22,
          2e-5, 0.3, 1/3, 2.0**53, 2.0**53 + 2, float("nan"), float("inf"), float("-inf")]
for _ in range(400):
    floats.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
for _ in range(200):
    floats.append(rng.uniform(-1, 1) * 10.0 ** rng.randint(-8, 20))
float_cases = [{"bits": bits(f), "repr": repr(f), "json": json.dumps(f)} for f in floats]

strings = ["", "plain", 'quote " and \\ backslash', "\n\r\t\b\f", "\x00\x01\x1f\x7f", "caf\u00e9",
           "\u4e2d\u6587", "emoji \U0001F600 and \U00010000", "</script>&<>", "\u2028\u2029", "\ufffd"]
string_cases = [{"s": s, "ascii": json.dumps(s), "utf8": json.dumps(s, ensure_ascii=False)} for s in strings]

docs = [
    {"b": [1, 2.5, "x", None, True, False, [], {}], "a": {"z": 1e-7, "y": "caf\u00e9", "\u00e9": [[]]}},
    [],
    {},
    [{"k": 1}, [1, [2, [3]]], 0.0, -0.0],
    {"weight_map": {"model.layers.0.mlp.down_proj.weight": "model-00001-of-00002.safetensors"},
     "metadata": {"total_size": 123, "total_parameters": 45}},
]
doc_cases = []
for d in docs:
    doc_cases.append({
        "doc": json.dumps(d),
        "indent2": json.dumps(d, indent=2, sort_keys=True),
        "compact": json.dumps(d, sort_keys=True),
        "indent2_utf8": json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False),
    })

print(json.dumps({"floats": float_cases, "strings": string_cases, "docs": doc_cases}))
