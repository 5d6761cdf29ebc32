// Tokens per second of the Hugging Face tokenizers library (Rust, through the
// Node binding's encodeBatch) on the same text and paragraphs as the Go
// benchmarks in shared/tokenizer/bench_test.go.
//
// usage: node bench.mjs ORACLE_DIR TEXT_FILE|STRINGS.jsonl.gz TOKENIZER_DIR [ROUNDS]
// One core: RAYON_NUM_THREADS=1 taskset -c 0 node bench.mjs ...
import fs from 'fs';
import path from 'path';
import zlib from 'zlib';
import { createRequire } from 'module';

const [oracleDir, textFile, tokDir, roundsArg] = process.argv.slice(2);
if (!oracleDir || !textFile || !tokDir) {
  console.error('usage: node bench.mjs ORACLE_DIR TEXT_FILE TOKENIZER_DIR [ROUNDS]');
  process.exit(2);
}
const tk = createRequire(path.resolve(oracleDir) + '/')('tokenizers');
const tok = tk.Tokenizer.fromFile(path.join(tokDir, 'tokenizer.json'));
// A .jsonl.gz file (expected/strings.jsonl.gz) is a list of strings; any
// other file is split into paragraphs at blank lines.
const paras = textFile.endsWith('.jsonl.gz')
  ? zlib.gunzipSync(fs.readFileSync(textFile)).toString('utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l))
  : fs.readFileSync(textFile, 'utf8').split('\n\n').filter((p) => p.trim() !== '');
const rounds = Number(roundsArg || 5);

let tokens = 0;
for (const e of await tok.encodeBatch(paras, { addSpecialTokens: false })) tokens += e.getIds().length;
let best = Infinity;
for (let r = 0; r < rounds; r++) {
  const t0 = process.hrtime.bigint();
  await tok.encodeBatch(paras, { addSpecialTokens: false });
  best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
}
console.log(JSON.stringify({ tokenizer: path.basename(tokDir), paragraphs: paras.length, tokens, seconds: best, tokens_per_s: Math.round(tokens / best) }));
