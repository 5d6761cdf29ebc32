// Package prompt turns dataset rows into tokenized, label-masked training
// samples the way Axolotl's prompt strategies do: which text each row becomes,
// where BOS and EOS go, and which tokens count in the loss (labels of -100 do
// not).
//
// It owns the strategies a config's `type:` names — the alpaca family
// (alpaca, alpaca:chat, alpaca_chat, alpaca_instruct, alpaca_w_system, ...),
// completion (long texts cut into sequence_len pieces), input_output
// (segments with label flags), chat_template (rendered with package
// chattemplate; sharegpt arrives here already mapped by package config),
// pre-tokenized rows (input_ids / labels / attention_mask), and user-defined
// instruction formats — plus what Axolotl applies to samples afterwards:
// excess_length_strategy (drop, truncate, raise) with its minimum of two
// tokens, and the special_tokens / tokens additions to the tokenizer. Explain
// renders a sample with its trained tokens marked, as Axolotl's --debug does.
//
// It reads rows (package datasets) and tokenizes (package tokenizer); it does
// not read files, pack samples (package packing) or talk to the bus.
package prompt
