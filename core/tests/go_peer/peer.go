// A peer for the smux interop test: the reference xtaci/smux (Debian's
// golang-github-xtaci-smux-dev) over this process's stdin/stdout.
//
//	peer server: accept streams and echo each until its FIN, then close it;
//	             also open one stream of its own that carries a greeting.
//	peer client: open N streams (argv[2]), send a payload on each, read the
//	             echo back, check it, close; exit 0 when all match.
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/xtaci/smux"
)

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error                { return nil }

func payload(i int) []byte {
	b := make([]byte, 5000+i*977)
	for k := range b {
		b[k] = byte(k*7 + i)
	}
	return b
}

func main() {
	cfg := smux.DefaultConfig()
	switch os.Args[1] {
	case "server":
		s, err := smux.Server(stdio{}, cfg)
		if err != nil {
			panic(err)
		}
		g, err := s.OpenStream()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(g, "hello from go, stream %d", g.ID())
		g.Close()
		for {
			st, err := s.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				io.Copy(st, st)
				st.Close()
			}()
		}
	case "client":
		n, _ := strconv.Atoi(os.Args[2])
		s, err := smux.Client(stdio{}, cfg)
		if err != nil {
			panic(err)
		}
		var wg sync.WaitGroup
		fail := false
		for i := 0; i < n; i++ {
			st, err := s.OpenStream()
			if err != nil {
				panic(err)
			}
			wg.Add(1)
			go func(i int, st *smux.Stream) {
				defer wg.Done()
				want := payload(i)
				go st.Write(want)
				got := make([]byte, len(want))
				if _, err := io.ReadFull(st, got); err != nil || !bytes.Equal(got, want) {
					fmt.Fprintf(os.Stderr, "stream %d: echo mismatch (%v)\n", st.ID(), err)
					fail = true
				}
				st.Close()
			}(i, st)
		}
		wg.Wait()
		if fail {
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "go client: all echoes matched")
	}
}
