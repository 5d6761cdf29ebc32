// Regenerates the expected token ids of the real tokenizers from the Hugging
// Face `tokenizers` library (the oracle). See README.md in this folder.
//
// usage: node gen.mjs ORACLE_DIR OUT_DIR NAME=TOKENIZER_DIR[:LIMIT]...
//   ORACLE_DIR: a folder where `npm ci` installed the oracle (node_modules/tokenizers)
//   OUT_DIR:    where strings.jsonl.gz and NAME.jsonl.gz are written
//
// strings.jsonl.gz holds one test string per line (a JSON string). NAME.jsonl.gz
// holds, line for line, what the oracle gives for that string (for the first
// LIMIT strings when a limit is given):
//   ids          add_special_tokens=false
//   ids_special  add_special_tokens=true, only when it differs from ids
//   offsets      character offsets of ids
//   decoded      decode(ids, skip_special_tokens=false), only when it differs from the text
//   decoded_skip decode(ids_special, skip_special_tokens=true), only when it differs from decoded
import fs from 'fs';
import path from 'path';
import zlib from 'zlib';
import { createRequire } from 'module';

const [oracleDir, outDir, ...targets] = process.argv.slice(2);
if (!oracleDir || !outDir || targets.length === 0) {
  console.error('usage: node gen.mjs ORACLE_DIR OUT_DIR NAME=TOKENIZER_DIR...');
  process.exit(2);
}
const tk = createRequire(path.resolve(oracleDir) + '/')('tokenizers');

// Deterministic PRNG (mulberry32) so the corpus is the same on every run.
let seed = 0x5eed1234;
function rand() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const cp = (lo, hi) => String.fromCodePoint(int(lo, hi));

const specials = [
  '<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>',
  '<|reserved_special_token_0|>', '<|reserved_special_token_17|>', '<|im_start|>', '<|im_end|>',
  '<|endoftext|>', '<|pad|>', '<s>', '</s>', '<unk>', '<think>', '</think>', '<tool_call>',
  '<|fim_prefix|>', '<|vision_start|>', '<0x41>', '<pad>', '<bos>', '<eos>', '<start_of_turn>',
  '<end_of_turn>', '[INST]', '[/INST]', '<<SYS>>', '<|im_start', 'im_end|>', '<s', '</s', '<|', '|>',
];
const words = ('the of and to in is you that it he was for on are as with his they I at be this have from ' +
  'or one had by word but not what all were we when your can said there use an each which she do how their ' +
  'if will up other about out many then them these so some her would make like him into time has look two ' +
  'more write go see number no way could people my than first water been call who oil its now find long down ' +
  'day did get come made may part Hello World HELLO tokenization Tokenizer naïve café résumé über Straße ' +
  'don\'t won\'t it\'s I\'m they\'ll we\'ve you\'re she\'d JavaScript TypeScript GPU CUDA ' +
  'ünïcödé Ωmega ελληνικά русский язык العربية עברית हिन्दी ภาษาไทย 日本語 中文 한국어 Việt').split(' ');
const code = [
  'def f(x):\n    return x**2\n', 'for (int i = 0; i < n; ++i) { a[i] += b[i]; }',
  'func main() {\n\tfmt.Println("hi")\n}\n', 'const x = {"a": [1, 2.5e-3, null, true]};',
  '<div class="x">Hi &amp; bye</div>', 'SELECT * FROM t WHERE id >= 42;', '#include <stdio.h>',
  '    if err != nil {\n        return err\n    }', '```python\nprint("x")\n```', '$ ls -la | grep .go',
  'x += 1 # comment', '/* block */ // line', 'lambda: x ** 2 if x else -x', '\t\tindent\t\t',
  'https://example.com/path?q=1&r=two#frag', 'user@example.org', 'C:\\Users\\me\\file.txt',
];
const spaces = [' ', '  ', '   ', '    ', '\t', '\n', '\n\n', '\r\n', '\r', ' \n', '\n ', '\u00a0', '\u3000',
  '\u2009', '\u200b', '\u200d', '\u000b', '\u000c', '\u0085', '\u2028', '\u2029', '\u202f', '\u1680', '  \t \n  '];
const digits = ['0', '7', '42', '123', '2024', '3.14159', '1,000,000', '٣٤٥', '１２３', '²³', 'Ⅻ', '½', '⑤', '০১২', '๓'];
const emoji = ['😀', '👍🏽', '👨\u200d👩\u200d👧', '🇫🇷', '🏳️\u200d🌈', '❤️', '✨', '🤖', '👩🏿\u200d💻', '🫠'];
const contractions = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL",
  "'d", "'D", "'ſ", "’s", "''s", "'x", "'", "''"];
const punct = ['.', ',', '!', '?', ';', ':', '...', '…', '—', '–', '-', '--', '(', ')', '[', ']', '{', '}', '"', '“', '”',
  '‘', '’', '«', '»', '/', '\\', '|', '@', '#', '$', '%', '^', '&', '*', '+', '=', '~', '`', '<', '>', '¿', '¡', '·'];
const scripts = [
  () => cp(0x4e00, 0x9fff), () => cp(0x3040, 0x309f), () => cp(0x30a0, 0x30ff), () => cp(0xac00, 0xd7a3),
  () => cp(0x1100, 0x1112) + cp(0x1161, 0x1175), () => cp(0x0400, 0x04ff), () => cp(0x0370, 0x03ff),
  () => cp(0x0600, 0x06ff), () => cp(0x0590, 0x05ff), () => cp(0x0900, 0x097f), () => cp(0x0e00, 0x0e7f),
  () => cp(0x00c0, 0x024f), () => pick('aeiouAEIOU') + cp(0x0300, 0x036f), () => pick('aeo') + cp(0x0300, 0x036f) + cp(0x0300, 0x036f),
  () => cp(0x1f300, 0x1faff), () => cp(0x2200, 0x22ff), () => cp(0x1d400, 0x1d7ff), () => cp(0x2460, 0x24ff),
  () => cp(0xff01, 0xff5e), () => cp(0xfb00, 0xfb06), () => cp(0x2150, 0x218f), () => cp(0x1e00, 0x1eff),
];
const fragments = [
  () => pick(words), () => ' ' + pick(words), () => pick(spaces), () => pick(digits), () => pick(punct),
  () => pick(contractions), () => pick(emoji), () => pick(specials), () => pick(scripts)(),
  () => pick(code), () => pick(scripts)() + pick(scripts)() + pick(scripts)(),
  () => pick(words).toUpperCase(), () => String(int(0, 99999999)),
];

const strings = [];
const add = (s) => strings.push(s);

// Hand-picked edge cases.
['', ' ', '  ', '\n', '\n\n\n', '\t', '\r\n', ' \n ', 'a', 'A', '0', "'", "'s", 'Hello world', 'Hello, world!',
  ' leading space', 'trailing space ', '  two leading', 'multiple   spaces   here', 'tabs\tand\nnewlines\r\nmixed',
  "I'm sure they'll've done it, we'd say", "HELLO I'M SHOUTING", "DON'T 'S 'T 'RE 'VE 'M 'LL 'D", "'ſ 'ſun", 'ſ',
  '1234567890', '12345678901234567890', '3.14159 and 2,718,281', 'year 2024: $1,000,000.00', 'x = 10**100',
  'café naïve résumé über', 'cafe\u0301 nai\u0308ve', 'e\u0301\u0323', '\u1100\u1161\u11a8', '한국어 텍스트',
  '日本語のテキスト', '中文字符测试', 'مرحبا بالعالم', 'Привет, мир!', 'שלום עולם', 'नमस्ते दुनिया', 'สวัสดีชาวโลก',
  'emoji 😀👍🏽 family 👨\u200d👩\u200d👧', '🇫🇷🇩🇪', '\u00a0non-breaking\u00a0space', 'zero\u200bwidth', 'ﬁ ﬂ ﬃ',
  '𝐀𝐁 math bold', 'Ⅻ ½ ² ①', 'ÿþĀ', '\u0000\u0001 control \u007f \u0085', '\ufeffBOM', '\ufffd replacement',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '!!!!!!!!!!!!!!!!', '................', '----------', '__init__',
  'ends with newline\n', 'a\n\nb', '   \n  \n', '\n   \n', ' \t \t ', '\u3000全角\u3000スペース',
  'The quick brown fox jumps over the lazy dog.', 'THE QUICK BROWN FOX', 'tHe QuIcK', 'camelCaseWord snake_case_word',
  '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n', '<s>[INST] hi [/INST] hello</s>',
  'text with <|im_end|> inside and <unk> too', '<|begin_of_text|>Hello<|eot_id|>', '<s><s></s></s>', ' <s> ',
  '<|endoftext|><|endoftext|>', 'a<|endoftext|>b', '<|im_start|><|im_end|>', '<|reserved_special_token_200|>',
  '<0x41><0xFF>', '▁leading metaspace', '▁▁', 'Ġ Ċ ĉ', '<think>\nreasoning\n</think>\n\nanswer',
  // Added-token flags of the feature tokenizers (features.mjs).
  'a <mask> b', 'a<mask>b', '   <mask>', '<mask>   x', '[R]   y', 'x [R]\n\nz', 'a word b', 'awordb', 'word',
  'words word.', '_word', 'Hello HELLO hello', 'HELLO', '  <both>  ', 'x<both>y', 'İSTANBUL İstanbul istanbul',
  '<mask><mask>', '[R][R]', 'Ⅻ ﬁ ① ㍿ Å', 'trailing spaces   ', 'A\u0301ccent STRIP é',
].forEach(add);
for (const c of code) add(c);
for (const s of specials) { add(s); add('x' + s + 'y'); add(' ' + s + ' '); }
for (const c of contractions) { add('word' + c); add(c + ' x'); add(c.toUpperCase() + 'x'); }
for (const s of spaces) { add('a' + s + 'b'); add(s + 'x'); add('x' + s); add(s + s + s); }

// Random mixes of fragments.
for (let i = 0; i < 2200; i++) {
  let s = '';
  const n = int(1, rand() < 0.8 ? 12 : 40);
  for (let k = 0; k < n; k++) s += pick(fragments)();
  add(s);
}
// Random code points from all over Unicode (assigned or not, no surrogates).
for (let i = 0; i < 120; i++) {
  let s = '';
  for (let k = int(1, 12); k > 0; k--) {
    let c;
    do { c = int(1, rand() < 0.7 ? 0xffff : 0x10ffff); } while (c >= 0xd800 && c <= 0xdfff);
    s += String.fromCodePoint(c);
    if (rand() < 0.3) s += ' ';
  }
  add(s);
}
// Very long inputs.
{
  let long = '';
  while (long.length < 20000) long += pick(fragments)();
  add(long);
  add('a'.repeat(5000));
  add('ab'.repeat(3000));
  add(' '.repeat(3000) + 'x');
  add('\n'.repeat(1000));
  add('1234567890'.repeat(500));
  add('😀'.repeat(1000));
  add('日本'.repeat(2000));
  add(words.join(' ').repeat(20));
  add('supercalifragilisticexpialidocious'.repeat(100));
}

const gz = (lines) => zlib.gzipSync(lines.map((l) => JSON.stringify(l)).join('\n') + '\n', { level: 9 });
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'strings.jsonl.gz'), gz(strings));

for (const target of targets) {
  const [name, spec] = target.split('=');
  const [dir, limit] = spec.split(':');
  const tok = tk.Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  const out = [];
  for (const text of strings.slice(0, limit ? Number(limit) : strings.length)) {
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    const special = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = plain.getIds();
    const idsSpecial = special.getIds();
    const rec = { ids, offsets: plain.getOffsets() };
    if (JSON.stringify(idsSpecial) !== JSON.stringify(ids)) rec.ids_special = idsSpecial;
    const decoded = await tok.decode(ids, false);
    const decodedSkip = await tok.decode(idsSpecial, true);
    if (decoded !== text) rec.decoded = decoded;
    if (decodedSkip !== decoded) rec.decoded_skip = decodedSkip;
    out.push(rec);
  }
  fs.writeFileSync(path.join(outDir, name + '.jsonl.gz'), gz(out));
  console.error(`${name}: ${out.length} strings`);
}
