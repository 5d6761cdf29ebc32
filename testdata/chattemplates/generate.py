#!/usr/bin/env python3
"""Regenerates the chat-template conformance fixtures of shared/chattemplate.

Renders every template of the corpus on every conversation with Python's jinja2
set up exactly as transformers' apply_chat_template sets it up (see
transformers/utils/chat_template_utils.py): ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks, loopcontrols and the {% generation %} tracker; HF's
tojson (json.dumps, no key sorting, no HTML escaping); raise_exception;
strftime_now. Render kwargs are transformers' too: messages, tools (None when
absent), documents (None when absent), add_generation_prompt, the tokenizer's
special tokens (AddedToken dicts reduced to their content), then the case's
extra kwargs. strftime_now reads a FIXED clock (2025-07-10 12:00:00) so the
expected text does not change with the date; the Go tests pin the same clock.

Inputs (all in this directory, except the Axolotl templates):
  ../../shared/chattemplate/templates/*.jinja  Axolotl's named templates (as the package embeds them)
  configs/*/tokenizer_config.json              real tokenizer configs (added_tokens_decoder dropped),
                                               and chat_template.jinja next to one where present
  extra_templates.json.gz                      [{"name", "template", "data"?}]: the real templates of
                                               huggingface.js' packages/jinja/test/e2e.test.js ("hfjs/",
                                               with the data those tests render) and of ardanlabs/jinja's
                                               testdata/templates ("ardan/")
  engine_snippets.py                           small Jinja snippets exercising the engine
Outputs:
  convs.json         {"convs": [{"name", "messages", "tools"?, "documents"?, "kwargs"?}], ...}
  expected.jsonl.gz  one line per template and (conv, add_generation_prompt), or per template and
                     "#own" data: {"template", "conv", "add_generation_prompt", "text", "generation"}
                     or {..., "error", "error_type"}; "generation" spans are in characters
  engine.json        [{"src", "vars", "text"} or {"src", "vars", "error", "error_type"}]
  turns.jsonl.gz     Axolotl's find_turn (prompt_strategies/chat_template.py) ported to characters, for
                     Axolotl's templates on every conversation: {"template", "conv", "spans": [[start, end]
                     or null per message, in characters of the render of the messages up to it]} or
                     {"template", "conv", "error"}
Templates without a tokenizer (axolotl/, hfjs/, ardan/) get the placeholder special tokens GENERIC.

Run from anywhere: python3 testdata/chattemplates/generate.py
Needs only python3 with jinja2 (3.1.x was used: see "jinja2_version" below).
"""
import glob
import gzip
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLOCK = datetime(2025, 7, 10, 12, 0, 0)


class AssistantTracker(jinja2.ext.Extension):
    """transformers' {% generation %} tag: records where each block's output
    lands in the rendered text (in characters)."""

    tags = {"generation"}

    def __init__(self, environment):
        super().__init__(environment)
        self.blocks = None
        self.spans = None

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        rv = caller()
        if self.blocks is not None:
            start = len("".join(self.blocks))
            self.spans.append((start, start + len(rv)))
        return rv


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: CLOCK.strftime(fmt)
    return env


ENV = make_env()
TRACKER = ENV.extensions[AssistantTracker.identifier]


def render(tpl, ctx):
    """Renders like transformers with return_assistant_tokens_mask: text and
    generation spans (character offsets)."""
    TRACKER.blocks, TRACKER.spans = [], []
    try:
        for block in tpl.generate(**ctx):
            TRACKER.blocks.append(block)
        return {"text": "".join(TRACKER.blocks), "generation": [list(s) for s in TRACKER.spans]}
    except Exception as e:  # the Go side must raise the same
        return {"error": str(e), "error_type": type(e).__name__}
    finally:
        TRACKER.blocks = TRACKER.spans = None


SPECIAL_ATTRS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def token_text(v):
    return v.get("content") if isinstance(v, dict) else v


def config_specials(cfg):
    """transformers' special_tokens_map: the set special tokens as strings."""
    sp = {}
    for k in SPECIAL_ATTRS:
        v = token_text(cfg.get(k))
        if v is not None:
            sp[k] = v
    extra = cfg.get("additional_special_tokens")
    if extra:
        sp["additional_special_tokens"] = [token_text(x) for x in extra]
    for k, v in (cfg.get("extra_special_tokens") or {}).items():
        sp[k] = token_text(v)
    return sp


# Placeholder specials for templates that come without a tokenizer.
GENERIC = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city",
           "parameters": {"type": "object", "properties": {
               "city": {"type": "string", "description": "City name"},
               "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}}
SEARCH = {"type": "function", "function": {"name": "search", "description": "Search the web & return <b>results</b>",
          "parameters": {"type": "object", "properties": {
              "q": {"type": "string"}, "limit": {"type": "integer", "default": 5}, "score": {"type": "number", "minimum": 0.5}}}}}
TOOLS = [WEATHER, SEARCH]
TOOL_TURNS = [
    {"role": "system", "content": "Use tools."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "id": "call_1", "function": {
        "name": "get_weather", "arguments": {"city": "Paris", "unit": "c", "days": 3, "ratio": 0.5, "big": 1e20, "ok": True, "none": None}}}]},
    {"role": "tool", "name": "get_weather", "tool_call_id": "call_1", "content": "{\"temp\": 21.0}"},
    {"role": "assistant", "content": "It is 21°C."},
]

CONVS = [
    {"name": "basic", "messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]},
    {"name": "system_multi", "messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a color."},
        {"role": "assistant", "content": " Blue. "}, {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Red."}]},
    {"name": "ends_user", "messages": [
        {"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Multi\nline\n\nquestion?"}]},
    {"name": "single_user", "messages": [{"role": "user", "content": "Hello"}]},
    {"name": "system_only", "messages": [{"role": "system", "content": "Only a system prompt."}]},
    {"name": "unicode", "messages": [
        {"role": "user", "content": "Ça va? 日本語 🎉 \"quotes\" 'single' <tag> & \\back\u2028sep\u00a0nbsp"},
        {"role": "assistant", "content": "  spaced  \n\t tab\r\nCRLF"}]},
    {"name": "empty_content", "messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]},
    {"name": "long", "messages": [
        {"role": "user", "content": "One"}, {"role": "assistant", "content": "Uno"},
        {"role": "user", "content": "Two"}, {"role": "assistant", "content": "Dos"},
        {"role": "user", "content": "Three"}, {"role": "assistant", "content": "Tres"}]},
    {"name": "role_error_first_assistant", "messages": [
        {"role": "assistant", "content": "I speak first"}, {"role": "user", "content": "ok"}]},
    {"name": "role_error_two_users", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
    {"name": "unknown_role", "messages": [{"role": "user", "content": "a"}, {"role": "narrator", "content": "b"}]},
    {"name": "parts", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Describe "}, {"type": "image"}, {"type": "text", "text": "this."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A thing."}]}]},
    {"name": "tool_calls", "messages": TOOL_TURNS},
    {"name": "tool_calls_tools", "messages": TOOL_TURNS, "tools": TOOLS},
    {"name": "tool_calls_string_args", "messages": [
        {"role": "user", "content": "Search cats"},
        {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "id": "c2", "function": {
            "name": "search", "arguments": "{\"q\": \"cats\", \"limit\": 2}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "[]"}], "tools": TOOLS},
    {"name": "reasoning", "messages": [
        {"role": "user", "content": "Think: 3*3?"}, {"role": "assistant", "content": "9", "reasoning_content": "3 times 3 is 9."},
        {"role": "user", "content": "And 4*4?"}, {"role": "assistant", "content": "<think>\n4*4=16\n</think>\n\n16"}]},
    {"name": "thinking_off", "messages": [{"role": "user", "content": "Quick: 1+1?"}, {"role": "assistant", "content": "2"}],
     "kwargs": {"enable_thinking": False}},
    {"name": "documents", "messages": [{"role": "user", "content": "Summarize."}],
     "documents": [{"title": "Doc A", "text": "Alpha text."}, {"title": "Doc B", "text": "Beta & <gamma>."}]},
    {"name": "key_order", "messages": [{"content": "content first", "role": "user"},
                                       {"role": "assistant", "name": "bot", "content": "ok", "weight": 1.0}]},
]


def random_convs(n, seed=11):
    """Randomized conversations (fixed seed) that reach paths the written ones
    miss: odd role orders, whitespace, content parts, tool calls, extra keys."""
    import random
    rng = random.Random(seed)
    words = ["hello", "  spaced ", "é", "日本", "🎉", "\n", "\t", "{{ x }}", "{% raw %}", "<|im_end|>", "'", '"', "\\", "0", "-1.5", ""]
    def text():
        return "".join(rng.choice(words) + rng.choice(["", " ", "\n"]) for _ in range(rng.randint(0, 6)))
    convs = []
    for i in range(n):
        msgs = []
        roles = ["user", "assistant"] * 3
        if rng.random() < 0.5:
            roles = ["system"] + roles
        if rng.random() < 0.3:
            rng.shuffle(roles)
        for role in roles[: rng.randint(1, len(roles))]:
            m = {"role": role, "content": text()}
            r = rng.random()
            if r < 0.1:
                m["content"] = [{"type": "text", "text": text()}, {"type": "text", "text": text()}]
            elif r < 0.2 and role == "assistant":
                m["tool_calls"] = [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": text(), "n": rng.randint(-5, 5)}}}]
            elif r < 0.3 and role == "assistant":
                m["reasoning_content"] = text()
            if rng.random() < 0.2:
                m = dict(reversed(list(m.items())))
            msgs.append(m)
        conv = {"name": f"random_{i}", "messages": msgs}
        if rng.random() < 0.2:
            conv["tools"] = TOOLS[: rng.randint(1, 2)]
        convs.append(conv)
    return convs


CONVS += random_convs(int(os.environ.get("RANDOM_CONVS", "15")), int(os.environ.get("RANDOM_SEED", "11")))


def load_corpus():
    templates = {}
    for f in sorted(glob.glob(os.path.join(REPO, "shared", "chattemplate", "templates", "*.jinja"))):
        with open(f, encoding="utf-8") as fh:  # Axolotl reads them in text mode too
            templates["axolotl/" + os.path.basename(f)[:-6]] = {"template": fh.read(), "specials": GENERIC}
    for f in sorted(glob.glob(os.path.join(HERE, "configs", "*", "tokenizer_config.json"))):
        cfg = json.load(open(f, encoding="utf-8"))
        tpl = cfg.get("chat_template")
        jf = os.path.join(os.path.dirname(f), "chat_template.jinja")
        if os.path.exists(jf):
            tpl = open(jf, encoding="utf-8").read()
        if isinstance(tpl, list):
            tpl = next(t["template"] for t in tpl if t["name"] == "default")
        if not tpl:
            continue
        templates["config/" + os.path.basename(os.path.dirname(f))] = {"template": tpl, "specials": config_specials(cfg)}
    with gzip.open(os.path.join(HERE, "extra_templates.json.gz"), "rt", encoding="utf-8") as fh:
        for c in json.load(fh):
            templates[c["name"]] = {"template": c["template"], "specials": GENERIC}
            if "data" in c:
                templates[c["name"]]["data"] = c["data"]
    return templates


def conv_ctx(specials, conv, agp):
    ctx = {"tools": None, "documents": None}
    ctx.update(specials)
    ctx.update(conv.get("kwargs", {}))
    ctx["messages"] = conv["messages"]
    ctx["add_generation_prompt"] = agp
    if conv.get("tools") is not None:
        ctx["tools"] = conv["tools"]
    if conv.get("documents") is not None:
        ctx["documents"] = conv["documents"]
    return ctx


def main():
    templates = load_corpus()
    lines = []
    compile_errors = {}
    for name, t in templates.items():
        try:
            tpl = ENV.from_string(t["template"])
        except Exception as e:
            compile_errors[name] = str(e)
            lines.append({"template": name, "error": str(e), "error_type": type(e).__name__})
            continue
        if "data" in t:  # the template's own example data from huggingface.js
            ctx = {"tools": None, "documents": None, "add_generation_prompt": False}
            ctx.update(t["data"])
            lines.append({"template": name, "conv": "#own", **render(tpl, ctx)})
        for conv in CONVS:
            for agp in (False, True):
                lines.append({"template": name, "conv": conv["name"], "add_generation_prompt": agp,
                              **render(tpl, conv_ctx(t["specials"], conv, agp))})
    with open(os.path.join(HERE, "convs.json"), "w", encoding="utf-8") as f:
        json.dump({"jinja2_version": jinja2.__version__, "clock": CLOCK.isoformat(), "convs": CONVS}, f,
                  ensure_ascii=False, indent=1)
        f.write("\n")
    with gzip.open(os.path.join(HERE, "expected.jsonl.gz"), "wt", encoding="utf-8", compresslevel=9) as f:
        for l in lines:
            f.write(json.dumps(l, ensure_ascii=False) + "\n")
    turns = turn_cases(templates)
    with gzip.open(os.path.join(HERE, "turns.jsonl.gz"), "wt", encoding="utf-8", compresslevel=9) as f:
        for l in turns:
            f.write(json.dumps(l, ensure_ascii=False) + "\n")
    engine = engine_cases()
    with open(os.path.join(HERE, "engine.json"), "w", encoding="utf-8") as f:
        json.dump(engine, f, ensure_ascii=False, indent=0)
        f.write("\n")
    errs = sum(1 for l in lines if "error" in l)
    print(f"{len(templates)} templates, {len(CONVS)} conversations, {len(lines)} renders ({errs} raise), "
          f"{len(engine)} engine snippets; templates that do not compile: {sorted(compile_errors)}", file=sys.stderr)


def find_turn_chars(tpl, specials, conv, i):
    """Axolotl's find_turn with content_only/reasoning_only off, diffing
    characters where Axolotl diffs token ids."""
    msgs = conv["messages"]
    turn = msgs[i]
    empty = {"role": turn.get("role"), "content": "[[dummy_message]]"}
    real_last_index = len(msgs) - 1

    def build(turns):  # ChatTemplatePrompter.build_prompt -> apply_chat_template
        ctx = {"tools": None, "documents": None}
        ctx.update(specials)
        ctx.update(conv.get("kwargs", {}))
        ctx.update(messages=turns, add_generation_prompt=False)
        if conv.get("tools"):
            ctx["tools"] = conv["tools"]
        if real_last_index:
            ctx["real_last_index"] = real_last_index
        return tpl.render(**ctx)

    dummy, full = build(msgs[:i] + [empty]), build(msgs[: i + 1])
    n = min(len(dummy), len(full))
    start = next((k for k in range(n) if dummy[k] != full[k]), None)
    if start is None:
        return None
    end = next((len(full) - k for k in range(n) if dummy[len(dummy) - 1 - k] != full[len(full) - 1 - k]), None)
    if end is None or end <= start:
        return None
    return [start, end]


def turn_cases(templates):
    out = []
    for name, t in templates.items():
        if not name.startswith("axolotl/"):
            continue
        tpl = ENV.from_string(t["template"])
        for conv in CONVS:
            try:
                spans = [find_turn_chars(tpl, t["specials"], conv, i) for i in range(len(conv["messages"]))]
                out.append({"template": name, "conv": conv["name"], "spans": spans})
            except Exception as e:
                out.append({"template": name, "conv": conv["name"], "error": str(e)})
    return out


def engine_cases():
    from engine_snippets import SNIPPETS
    out = []
    for src, vars_ in SNIPPETS:
        case = {"src": src, "vars": vars_}
        try:
            case["text"] = ENV.from_string(src).render(**vars_)
        except Exception as e:
            case["error"] = str(e)
            case["error_type"] = type(e).__name__
        out.append(case)
    return out


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
