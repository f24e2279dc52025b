// Package mailstream is what a Go program needs to talk to mailstream over Kafka: the
// public Avro schemas, their single-object encoding, and the topic and key rules.
package mailstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// LoadSchema parses the schema fullName (say "mailstream.v1.EmailRequested") from dir,
// the repository's schemas/ folder. That folder holds one file per named type, called
// by the type's full name, so every named type the schema refers to is found there and
// parsed first.
func LoadSchema(dir, fullName string) (avro.Schema, error) {
	return load(dir, fullName, &avro.SchemaCache{}, map[string]bool{})
}

func load(dir, fullName string, cache *avro.SchemaCache, seen map[string]bool) (avro.Schema, error) {
	seen[fullName] = true
	text, err := os.ReadFile(filepath.Join(dir, fullName+".avsc"))
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(text, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", fullName, err)
	}
	for _, ref := range typeNames(doc) {
		if seen[ref] {
			continue
		}
		_, err := load(dir, ref, cache, seen)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a primitive such as "string": no file of that name
		}
		if err != nil {
			return nil, err
		}
	}
	return avro.ParseBytesWithCache(text, "", cache)
}

// typeNames lists the type names a schema document uses: primitives and references to
// named types alike, wherever a type may stand (a field's type, array items, map values,
// union members).
func typeNames(node any) []string {
	switch n := node.(type) {
	case string:
		return []string{n}
	case []any: // a union
		var names []string
		for _, member := range n {
			names = append(names, typeNames(member)...)
		}
		return names
	case map[string]any:
		var names []string
		for _, key := range []string{"type", "items", "values"} {
			if inner, ok := n[key]; ok {
				names = append(names, typeNames(inner)...)
			}
		}
		fields, _ := n["fields"].([]any)
		for _, field := range fields {
			names = append(names, typeNames(field)...)
		}
		return names
	}
	return nil
}

// CanonicalForm is the schema's Parsing Canonical Form as the Avro specification defines
// it, the text whose fingerprint single-object encoding carries. It is written here rather
// than taken from hamba's schema.String(), which keeps logicalType attributes
// ({"type":"long","logicalType":"timestamp-millis"}) where the specification, and so
// mailstream and the Java and Python libraries, keep only the primitive ("long"): with
// them the fingerprint of every mailstream schema would differ.
func CanonicalForm(schema avro.Schema) string {
	var b strings.Builder
	writeCanonical(&b, schema, map[string]bool{})
	return b.String()
}

func writeCanonical(b *strings.Builder, schema avro.Schema, written map[string]bool) {
	if ref, ok := schema.(*avro.RefSchema); ok {
		schema = ref.Schema()
	}
	// A named type is written out in full once; each later use is its full name alone.
	if named, ok := schema.(avro.NamedSchema); ok {
		if written[named.FullName()] {
			b.WriteString(strconv.Quote(named.FullName()))
			return
		}
		written[named.FullName()] = true
		fmt.Fprintf(b, `{"name":%q,"type":%q,`, named.FullName(), schema.Type())
	}
	switch s := schema.(type) {
	case *avro.RecordSchema:
		b.WriteString(`"fields":[`)
		for i, field := range s.Fields() {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, `{"name":%q,"type":`, field.Name())
			writeCanonical(b, field.Type(), written)
			b.WriteByte('}')
		}
		b.WriteString("]}")
	case *avro.EnumSchema:
		symbols, _ := json.Marshal(s.Symbols())
		fmt.Fprintf(b, `"symbols":%s}`, symbols)
	case *avro.FixedSchema:
		fmt.Fprintf(b, `"size":%d}`, s.Size())
	case *avro.ArraySchema:
		b.WriteString(`{"type":"array","items":`)
		writeCanonical(b, s.Items(), written)
		b.WriteByte('}')
	case *avro.MapSchema:
		b.WriteString(`{"type":"map","values":`)
		writeCanonical(b, s.Values(), written)
		b.WriteByte('}')
	case *avro.UnionSchema:
		b.WriteByte('[')
		for i, member := range s.Types() {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, member, written)
		}
		b.WriteByte(']')
	default: // null and the primitives, any logicalType dropped
		b.WriteString(strconv.Quote(string(schema.Type())))
	}
}
