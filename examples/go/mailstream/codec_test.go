package mailstream

import (
	"strings"
	"testing"
	"time"
)

const schemas = "../../../schemas"

func TestRoundTrip(t *testing.T) {
	codec, err := NewCodec(schemas, EmailRequestedSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fingerprint %x, canonical form %s", codec.Fingerprint, CanonicalForm(codec.Schema))
	if strings.Contains(CanonicalForm(codec.Schema), "logicalType") {
		t.Error("the canonical form keeps a logicalType")
	}
	data := `{"name": "Ana"}`
	sent := EmailRequested{
		MessageID:        "m-1",
		TenantID:         "acme",
		FromAddress:      "hello@acme.mailstream.test",
		To:               []Recipient{{Address: "you@inbox.mailstream.test"}},
		Template:         &TemplateRef{Name: "welcome"},
		TemplateDataJSON: &data,
		RequestedAt:      time.UnixMilli(1_700_000_000_000).UTC(),
	}
	value, err := codec.Encode(sent)
	if err != nil {
		t.Fatal(err)
	}
	if value[0] != 0xC3 || value[1] != 0x01 || string(value[2:10]) != string(codec.Fingerprint) {
		t.Fatalf("header % x", value[:10])
	}
	var got EmailRequested
	if err := codec.Decode(value, &got); err != nil {
		t.Fatal(err)
	}
	if got.MessageID != sent.MessageID || *got.TemplateDataJSON != data || !got.RequestedAt.Equal(sent.RequestedAt) {
		t.Errorf("decoded %+v", got)
	}
}

func TestDecodeRefusesConfluentFraming(t *testing.T) {
	codec, err := NewCodec(schemas, EmailEventSchema)
	if err != nil {
		t.Fatal(err)
	}
	confluent := []byte{0x00, 0x00, 0x00, 0x00, 0x2A, 0x02, 0x61, 0x62, 0x63, 0x64, 0x65}
	var event EmailEvent
	if err := codec.Decode(confluent, &event); err == nil || !strings.Contains(err.Error(), "C3 01") {
		t.Errorf("decoded a Confluent-framed record: %v", err)
	}
}
