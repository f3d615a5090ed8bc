// Lists a tar the way Go's archive/tar (inside docker, podman, skopeo and ctr) reads it:
// one line per entry, "<typeflag> <sha256 of its data> <size> <name>". Used by the differential tests.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r := tar.NewReader(f)
	for {
		h, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		sum := sha256.New()
		n, err := io.Copy(sum, r)
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		fmt.Printf("%c %x %d %s\n", h.Typeflag, sum.Sum(nil), n, h.Name)
	}
}
