// Command vault is the Vault server and CLI, built from the MPL-2.0 source of
// github.com/hashicorp/vault v1.13.0. It exists for machines that cannot pull
// the hashicorp/vault image; deploy/images/vault/Dockerfile packages it.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
