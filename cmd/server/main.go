// Command server runs rotor: the notes API over mutual TLS on a Postgres
// pool whose credentials come from Vault. It is configured by environment
// variables; `server -help` lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"example.com/rotor/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rotor:", err)
		os.Exit(1)
	}
}

// run starts rotor and blocks until ctx ends or a listener fails. Logs go
// to stdout; stderr gets the help text and flag errors.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet(args[0], flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { app.PrintHelp(stderr) }
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}

	cfg, err := app.LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := app.NewLogger(stdout, cfg)
	log.Info("starting", cfg.LogAttrs()...)

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.Serve(ctx)
}
