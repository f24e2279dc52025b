package mailstream

import (
	"bytes"
	"fmt"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/pkg/crc64"
)

// Magic opens every record mailstream reads or writes: the two-byte marker of Avro
// single-object encoding. A record framed another way (say, Confluent's serializer: a
// 0 byte and a 4-byte schema registry id) is not read as a request and goes to
// email.requested.dlq.
var Magic = []byte{0xC3, 0x01}

// headerLen is the marker and the 8-byte fingerprint that precede the Avro binary body.
const headerLen = 10

// Codec writes and reads one record type in Avro single-object encoding:
//
//	C3 01 | CRC-64-AVRO fingerprint of the schema, 8 bytes little-endian | Avro binary body
type Codec struct {
	Schema      avro.Schema
	Fingerprint []byte
}

// NewCodec loads the schema fullName from the schemas folder dir.
func NewCodec(dir, fullName string) (*Codec, error) {
	schema, err := LoadSchema(dir, fullName)
	if err != nil {
		return nil, err
	}
	// CRC-64-AVRO is the Rabin fingerprint of the specification; single-object encoding
	// puts it on the wire little-endian.
	sum := crc64.SumWithByteOrder([]byte(CanonicalForm(schema)), crc64.LittleEndian)
	return &Codec{Schema: schema, Fingerprint: sum[:]}, nil
}

// Encode returns v (a struct with avro field tags) single-object encoded.
func (c *Codec) Encode(v any) ([]byte, error) {
	body, err := avro.Marshal(c.Schema, v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, headerLen+len(body))
	out = append(out, Magic...)
	out = append(out, c.Fingerprint...)
	return append(out, body...), nil
}

// Decode reads data into v, refusing data that is not single-object encoded or was
// written with another schema (another type, or another version of this one).
func (c *Codec) Decode(data []byte, v any) error {
	if len(data) < headerLen || !bytes.Equal(data[:2], Magic) {
		return fmt.Errorf("not Avro single-object encoded (no C3 01 marker)")
	}
	if fp := data[2:headerLen]; !bytes.Equal(fp, c.Fingerprint) {
		return fmt.Errorf("written with schema fingerprint %x, this reader has %x", fp, c.Fingerprint)
	}
	return avro.Unmarshal(c.Schema, data[headerLen:], v)
}
