"""Expected ids and labels for shared/prompt's chat_template tests, made the way Axolotl makes them.

Renders each case's conversations with Python jinja2 set up as transformers' apply_chat_template
(sandboxed, trim_blocks, lstrip_blocks, loopcontrols, HF tojson, raise_exception), tokenizes every
rendered text with the Hugging Face tokenizers library (node + ../shared/tools/oracle/tokenize.mjs,
add_special_tokens=False as apply_chat_template(tokenize=True) does), and labels the tokens with a
port of Axolotl's ChatTemplateStrategy (prompt_strategies/chat_template.py at commit 067b021):
find_turn diffs the ids of the conversation up to a turn rendered with "[[dummy_message]]" and with
the real content; EOT/EOS tokens within 3 tokens of a turn's end follow train_on_eot/train_on_eos.

usage: python3 gen.py ORACLE_DIR TOKENIZERS_DIR AXOLOTL_TEMPLATES_DIR > expected.jsonl
  ORACLE_DIR: a copy of ../shared/tools/oracle with npm ci run in it
  TOKENIZERS_DIR: ../shared/fixtures/tokenizers (tokenizer.json + tokenizer_config.json per name)
  AXOLOTL_TEMPLATES_DIR: Axolotl's src/axolotl/utils/chat_templates/templates
"""
import json, os, subprocess, sys
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError

IGNORE = -100
oracle_dir, tok_dir, axo_dir = sys.argv[1:4]
here = os.path.dirname(os.path.abspath(__file__))
cases = json.load(open(os.path.join(here, "cases.json")))


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception


def token_text(v):
    return v.get("content") if isinstance(v, dict) else v


def tokenizer_config(name):
    return json.load(open(os.path.join(tok_dir, name, "tokenizer_config.json")))


def template_source(case):
    t = case["axolotl"]["template"]
    if isinstance(t, dict):
        return t["jinja"]
    if t == "tokenizer_default":
        return tokenizer_config(case["tokenizer"])["chat_template"]
    return open(os.path.join(axo_dir, t + ".jinja")).read()


_ids = {}


def tokenize_all(name, texts):
    todo = [t for t in dict.fromkeys(texts) if (name, t) not in _ids]
    if not todo:
        return
    inp = "".join(json.dumps({"text": t}) + "\n" for t in todo)
    out = subprocess.run(["node", os.path.join(oracle_dir, "tokenize.mjs"), os.path.join(tok_dir, name)],
                         input=inp, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        r = json.loads(line)
        _ids[(name, r["text"])] = r["ids"]


class Strategy:
    """Axolotl's ChatTemplatePrompter + ChatTemplateStrategy, the non-legacy path."""

    def __init__(self, case):
        a = case["axolotl"]
        self.case = case
        cfg = tokenizer_config(case["tokenizer"])
        self.specials = {k: token_text(cfg.get(k)) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
        self.tpl_src = template_source(case)
        self.tpl = env.from_string(self.tpl_src)
        self.field_messages = a.get("field_messages", "messages")
        self.mappings = a.get("mappings") or {"role": "role", "content": "content"}
        roles = a.get("roles")
        self.roles = ({s: t for t, srcs in roles.items() for s in srcs} if roles else
                      {"human": "user", "user": "user", "assistant": "assistant", "gpt": "assistant", "system": "system", "tool": "tool"})
        self.roles_to_train = [self.roles.get(r, r) for r in a.get("roles_to_train", ["assistant"])]
        self.train_on_eos = a.get("train_on_eos", "turn")
        self.train_on_eot = a.get("train_on_eot") or self.train_on_eos
        self.train_on_inputs = a.get("train_on_inputs", False)
        self.training_field = a.get("message_field_training")
        self.drop_system = a.get("drop_system_message", False)
        self.kwargs = a.get("kwargs", {})
        eos = self.specials["eos_token"]
        self.eot_tokens = a.get("eot_tokens") or [eos]
        if not (len(self.eot_tokens) == 1 and self.eot_tokens[0] == eos):
            self.eot_tokens = [t for t in self.eot_tokens if t in self.tpl_src]
        self.eos_text = eos

    def render(self, turns, real_last_index=None):
        ctx = dict(self.specials)
        ctx.update(messages=turns, add_generation_prompt=False, tools=None, documents=None)
        ctx.update(self.kwargs)
        if real_last_index:
            ctx["real_last_index"] = real_last_index
        return self.tpl.render(**ctx)

    def transform(self, message):
        out = {}
        for key, value in self.mappings.items():
            if message.get(value) is not None:
                out[key] = message[value]
        if "role" in out:
            out["role"] = self.roles.get(out["role"], out["role"])
        return out

    def thread(self, row):
        turns = []
        for m in row[self.field_messages]:
            t = self.transform(m)
            if self.training_field and m.get(self.training_field) is not None:
                t["training"] = m[self.training_field]
            turns.append(t)
        if self.drop_system and turns[0]["role"] == "system":
            turns = turns[1:]
        return turns

    def texts(self, row):
        """Every text the labelling tokenizes."""
        turns = self.thread(row)
        clean = [{k: v for k, v in t.items() if k != "training"} for t in turns]
        out = [self.render(clean)]
        for i in range(len(turns)):
            dummy = {"role": clean[i].get("role"), "content": "[[dummy_message]]"}
            out.append(self.render(clean[:i] + [dummy], len(turns) - 1))
            out.append(self.render(clean[: i + 1], len(turns) - 1))
        return out

    def ids(self, text):
        return _ids[(self.case["tokenizer"], text)]

    def find_turn(self, clean, i):
        dummy = {"role": clean[i].get("role"), "content": "[[dummy_message]]"}
        d = self.ids(self.render(clean[:i] + [dummy], len(clean) - 1))
        f = self.ids(self.render(clean[: i + 1], len(clean) - 1))
        n = min(len(d), len(f))
        start = next((k for k in range(n) if d[k] != f[k]), None)
        if start is None:
            return -1, -1
        end = None
        for k in range(n):
            if d[len(d) - 1 - k] != f[len(f) - 1 - k]:
                end = len(f) - k
                break
        if end is None or end <= start:
            return -1, -1
        return start, end

    def label(self, row):
        turns = self.thread(row)
        clean = [{k: v for k, v in t.items() if k != "training"} for t in turns]
        text = self.render(clean)
        input_ids = self.ids(text)
        labels = [IGNORE] * len(input_ids)
        eot_ids = set()
        for tkn in self.eot_tokens:
            tokenize_all(self.case["tokenizer"], [tkn])
            enc = self.ids(tkn)
            if len(enc) == 1:
                eot_ids.add(enc[0])
        tokenize_all(self.case["tokenizer"], [self.eos_text])
        eos_id = self.ids(self.eos_text)[0]
        last_eos = last_eot = -1
        for i, turn in enumerate(turns):
            train = turn.get("training")
            should = train if train is not None else (self.train_on_inputs or turn.get("role") in self.roles_to_train)
            if not should and self.train_on_eos != "all" and self.train_on_eot != "all":
                continue
            start, end = self.find_turn(clean, i)
            if should and start != -1 and end != -1:
                labels[start:end] = input_ids[start:end]
            for kind, ids, option in (("EOT", eot_ids, self.train_on_eot), ("EOS", {eos_id}, self.train_on_eos)):
                idx = next((k for k in range(end, len(input_ids)) if input_ids[k] in ids), -1)
                if idx != -1 and abs(idx - end) <= 3:
                    if kind == "EOT":
                        last_eot = idx
                    else:
                        last_eos = idx
                    if option == "all" or (option == "turn" and should):
                        labels[idx] = input_ids[idx]
        for idx, option in ((last_eot, self.train_on_eot), (last_eos, self.train_on_eos)):
            if option == "last" and idx != -1:
                labels[idx] = input_ids[idx]
        return text, input_ids, labels


strategies = [Strategy(c) for c in cases]
for s in strategies:
    tokenize_all(s.case["tokenizer"], [t for row in s.case["rows"] for t in s.texts(row)])
for s in strategies:
    for r, row in enumerate(s.case["rows"]):
        text, ids, labels = s.label(row)
        print(json.dumps({"case": s.case["name"], "row": r, "text": text, "input_ids": ids, "labels": labels}, ensure_ascii=False))
