// Command eft fine-tunes language models from an Axolotl-style YAML config.
//
// It is both the CLI and the all-in-one binary: `eft train cfg.yml` starts an
// embedded NATS JetStream server and every service in-process; `eft serve X`
// runs one service against a NATS cluster; the other commands talk to a
// running system (submit, runs, logs) or work offline (config).
//
// Adding a command takes one file, cmd_<name>.go, and no edit elsewhere:
//
//	func init() { addCommand(newFooCommand) }
//
//	func newFooCommand(g *globals) *cobra.Command {
//		return &cobra.Command{Use: "foo", RunE: func(cmd *cobra.Command, args []string) error { ... }}
//	}
//
// Write output to cmd.OutOrStdout() / cmd.ErrOrStderr() (tests capture them),
// read shared settings (--home, --nats) from g at run time, and return errors
// rather than exiting; return exitCode(n) for a quiet non-zero exit after the
// command has printed its own diagnosis.
package main
