package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code from a command to main, which
// exits from one place. `kiln status` and `kiln diff` answer a question
// with their exit code (1: not ready, or a difference), so their errors
// must exit 2 and never be mistaken for an answer.
type exitError struct {
	code int
	err  error // nil for an answer that is not an error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process exit code for the error a command returned.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return 1
}

// answerCmd makes cmd a command that answers with its exit code: usage
// errors exit 2, and run's error is printed as "kiln NAME: error" and
// exits 2 (or run's code, if not 0).
func answerCmd(cmd *cobra.Command, args cobra.PositionalArgs, run func(cmd *cobra.Command, args []string) (int, error)) {
	cmd.Args = func(cmd *cobra.Command, a []string) error {
		if err := args(cmd, a); err != nil {
			return &exitError{code: 2, err: err}
		}
		return nil
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: 2, err: err} })
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		// Flags and arguments are fine by now; run reports its own errors,
		// and an answer (exit 1) is not an error to print.
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		code, err := run(cmd, a)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "kiln %s: %v\n", cmd.Name(), err)
			if code == 0 {
				code = 2
			}
		}
		if code == 0 {
			return nil
		}
		return &exitError{code: code, err: err}
	}
}
