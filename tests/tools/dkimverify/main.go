// dkimverify: an independent DKIM verifier (emersion/go-msgauth) for the tests, because the
// Perl Mail::DKIM that Debian 12 ships predates Ed25519 (RFC 8463). It reads one message on
// stdin, looks keys up only at the DNS server given with -dns, and prints one line per
// signature, in header order: "<algorithm> <selector> pass" or "<algorithm> <selector> fail
// <reason>".
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

func main() {
	server := flag.String("dns", "127.0.0.1:53", "the only DNS server to ask, host:port")
	flag.Parse()
	message, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading stdin:", err)
		os.Exit(2)
	}
	resolver := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, *server)
		},
	}
	lookup := func(name string) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return resolver.LookupTXT(ctx, name)
	}
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(message), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifying:", err)
		os.Exit(2)
	}
	tags := signatureTags(message)
	for i, v := range verifications {
		algorithm, selector := "?", "?"
		if i < len(tags) {
			algorithm, selector = tags[i]["a"], tags[i]["s"]
		}
		if v.Err == nil {
			fmt.Printf("%s %s pass\n", algorithm, selector)
		} else {
			fmt.Printf("%s %s fail %s\n", algorithm, selector, strings.ReplaceAll(v.Err.Error(), "\n", " "))
		}
	}
}

// signatureTags returns the tags of each DKIM-Signature field, top to bottom: the order in
// which dkim.Verify reports them.
func signatureTags(message []byte) []map[string]string {
	var fields []string
	scanner := bufio.NewScanner(bytes.NewReader(message))
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := strings.TrimRight(scanner.Text(), "\r")
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += line
			continue
		}
		fields = append(fields, line)
	}
	var found []map[string]string
	for _, field := range fields {
		name, value, ok := strings.Cut(field, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "DKIM-Signature") {
			continue
		}
		tags := map[string]string{}
		for _, part := range strings.Split(value, ";") {
			k, v, ok := strings.Cut(part, "=")
			if ok {
				tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
			}
		}
		found = append(found, tags)
	}
	return found
}
