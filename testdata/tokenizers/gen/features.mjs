// Derives feature tokenizers from the two trained ones, so that pipeline
// parts the real tokenizers do not use (Lowercase, NFKC, Strip, Digits,
// Metaspace, Whitespace, Punctuation, RobertaProcessing, added tokens with
// lstrip/rstrip/single_word/normalized...) are also held against the oracle.
//
// usage: node features.mjs TESTDATA_TOKENIZERS_DIR
// writes feat-*/tokenizer.json.gz and feat-*/tokenizer.json (the plain file
// is for the oracle run and is not committed).
import fs from 'fs';
import path from 'path';
import zlib from 'zlib';

const root = process.argv[2];
if (!root) { console.error('usage: node features.mjs TESTDATA_TOKENIZERS_DIR'); process.exit(2); }
const read = (name) => JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(root, name, 'tokenizer.json.gz'))));
const write = (name, tok) => {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  const text = JSON.stringify(tok, null, 2);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), text);
  fs.writeFileSync(path.join(dir, 'tokenizer.json.gz'), zlib.gzipSync(text, { level: 9 }));
};
const added = (id, content, flags) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false, ...flags,
});
const extraTokens = (base) => [
  added(base, '<mask>', { lstrip: true, special: true }),
  added(base + 1, '[R]', { rstrip: true, special: true }),
  added(base + 2, 'word', { single_word: true }),
  added(base + 3, 'hello', { normalized: true }),
  added(base + 4, '<both>', { lstrip: true, rstrip: true, special: true }),
  added(base + 5, 'İstanbul', { normalized: true }),
];

// Byte-level BPE behind NFKC + Lowercase + Strip, a Digits/Punctuation split,
// ByteLevel with add_prefix_space, and RobertaProcessing with trimmed offsets.
{
  const t = read('tok-bytelevel');
  t.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: false, strip_right: true }] };
  t.pre_tokenizer = {
    type: 'Sequence', pretokenizers: [
      { type: 'Digits', individual_digits: true },
      { type: 'Punctuation', behavior: 'Isolated' },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    ],
  };
  t.post_processor = { type: 'RobertaProcessing', sep: ['<|end_of_text|>', 1], cls: ['<|begin_of_text|>', 0], trim_offsets: true, add_prefix_space: true };
  t.added_tokens = t.added_tokens.concat(extraTokens(Object.keys(t.model.vocab).length));
  write('feat-bytelevel', t);
}
// SentencePiece-style BPE behind NFD and StripAccents with a Metaspace
// pre-tokenizer (prepend_scheme "first") instead of Prepend/Replace
// normalizers, a Metaspace decoder, and BertProcessing.
{
  const t = read('tok-sentencepiece');
  t.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' }, { type: 'Replace', pattern: { Regex: '\\s{2,}' }, content: ' ' }] };
  t.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true };
  t.decoder = { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true }, { type: 'ByteFallback' }, { type: 'Fuse' }] };
  t.post_processor = { type: 'BertProcessing', sep: ['</s>', 2], cls: ['<s>', 1] };
  t.added_tokens = t.added_tokens.concat(extraTokens(Object.keys(t.model.vocab).length));
  write('feat-metaspace', t);
}
// Whitespace pre-tokenizer, NFKD, no decoder (tokens joined by spaces).
{
  const t = read('tok-sentencepiece');
  t.normalizer = { type: 'NFKD' };
  t.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' }, { type: 'Digits', individual_digits: false }] };
  t.decoder = null;
  t.post_processor = null;
  write('feat-whitespace', t);
}
// Unigram built from the SentencePiece vocabulary with made-up scores
// (longer pieces score higher), byte fallback, an NFKC normalizer and the
// Metaspace pre-tokenizer without splitting.
{
  const t = read('tok-sentencepiece');
  const vocab = Object.entries(t.model.vocab).sort((a, b) => a[1] - b[1]);
  let h = 7;
  const score = (tok) => { h = (h * 1103515245 + 12345) >>> 0; return -12 + [...tok].length * 1.5 + (h % 1000) / 1000; };
  t.model = { type: 'Unigram', unk_id: 0, byte_fallback: true, vocab: vocab.map(([tok]) => [tok, tok === '<unk>' ? 0 : score(tok)]) };
  t.normalizer = { type: 'NFKC' };
  t.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: false };
  t.decoder = { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: false }, { type: 'ByteFallback' }, { type: 'Fuse' }] };
  write('feat-unigram', t);
}
// WordPiece (BERT): the SentencePiece pieces as words and ##continuations,
// BertNormalizer, BertPreTokenizer, BertProcessing, WordPiece decoder.
{
  const t = read('tok-sentencepiece');
  const vocab = { '[UNK]': 0, '[CLS]': 1, '[SEP]': 2, '[PAD]': 3, '[MASK]': 4 };
  let next = 5;
  for (const tok of Object.keys(t.model.vocab).sort((a, b) => t.model.vocab[a] - t.model.vocab[b])) {
    if (tok.startsWith('<')) continue;
    const word = tok.startsWith('▁') ? tok.slice(1) : '##' + tok;
    if (word !== '' && word !== '##' && !(word in vocab)) vocab[word.toLowerCase()] = next++;
  }
  for (const c of '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~0123456789') if (!(c in vocab)) vocab[c] = next++;
  t.model = { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab };
  t.normalizer = { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true };
  t.pre_tokenizer = { type: 'BertPreTokenizer' };
  t.post_processor = { type: 'BertProcessing', sep: ['[SEP]', 2], cls: ['[CLS]', 1] };
  t.decoder = { type: 'WordPiece', prefix: '##', cleanup: true };
  t.added_tokens = ['[UNK]', '[CLS]', '[SEP]', '[PAD]', '[MASK]'].map((c, i) => added(i, c, { special: true }));
  write('feat-wordpiece', t);
}
// BPE with continuing_subword_prefix "##" and end_of_word_suffix "</w>"
// (unfused <unk> for unknown characters, BPEDecoder), trained here by a
// few hundred plain BPE merge steps over the words of the Whitespace
// pre-tokenizer test vocabulary.
{
  const text = ('the quick brown fox jumps over the lazy dog hello world tokenization tokenizer token ' +
    'worlds words wording hellos jumping jumped lazier brownish foxes overdone thereafter there their ' +
    'café naïve résumé über 1234567890 I am you are we were they said what which when where who why how').repeat(3);
  const words = text.split(' ').filter((w) => w);
  const split = (w) => [...w].map((c, i, a) => (i > 0 ? '##' : '') + c + (i === a.length - 1 ? '</w>' : ''));
  let seqs = words.map(split);
  const vocab = { '<unk>': 0 };
  for (const s of seqs) for (const t of s) if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  const merges = [];
  for (let step = 0; step < 250; step++) {
    const counts = new Map();
    for (const s of seqs) for (let i = 0; i + 1 < s.length; i++) {
      const k = s[i] + ' ' + s[i + 1];
      counts.set(k, (counts.get(k) || 0) + 1);
    }
    let best = null;
    for (const [k, n] of counts) if (!best || n > best[1] || (n === best[1] && k < best[0])) best = [k, n];
    if (!best) break;
    const [a, b] = best[0].split(' ');
    const merged = a + b.slice(2);
    merges.push([a, b]);
    if (!(merged in vocab)) vocab[merged] = Object.keys(vocab).length;
    seqs = seqs.map((s) => {
      const out = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { out.push(merged); i++; } else out.push(s[i]);
      }
      return out;
    });
  }
  write('feat-subword', {
    version: '1.0', truncation: null, padding: null, added_tokens: [added(0, '<unk>', { special: true })],
    normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null,
    decoder: { type: 'BPEDecoder', suffix: '</w>' },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: '##', end_of_word_suffix: '</w>',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  });
}
