// Command produce publishes one templated EmailRequested to mailstream and prints where
// it landed, as a JSON line. The template must have been applied for the tenant first
// (`mailstream templates apply -f templates.yaml`).
//
//	produce -tenant acme -from hello@acme.mailstream.test -to you@inbox.mailstream.test \
//	  -template welcome -locale en -data '{"name": "Ana"}'
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"log"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"mailstream.test/example/mailstream"
)

func main() {
	bootstrap := flag.String("bootstrap", mailstream.Env("MAILSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"), "Kafka bootstrap servers")
	prefix := flag.String("topic-prefix", mailstream.Env("MAILSTREAM_KAFKA__TOPIC_PREFIX", ""), "the deployment's topic prefix")
	schemas := flag.String("schemas", "../../schemas", "the repository's schemas/ folder")
	priority := flag.String("priority", "transactional", "critical, transactional or bulk")
	messageID := flag.String("message-id", "", "the tenant's id for this message (default: a fresh random one)")
	tenant := flag.String("tenant", "", "tenant id")
	from := flag.String("from", "", "sender address, in one of the tenant's sender domains")
	to := flag.String("to", "", "recipient address")
	template := flag.String("template", "", "template name")
	locale := flag.String("locale", "", "template locale (default: the template's default locale)")
	data := flag.String("data", "{}", "template data, a JSON object")
	flag.Parse()
	if *tenant == "" || *from == "" || *to == "" || *template == "" {
		log.Fatal("-tenant, -from, -to and -template are required")
	}
	if !json.Valid([]byte(*data)) {
		log.Fatalf("-data is not JSON: %s", *data)
	}
	if *messageID == "" {
		*messageID = newMessageID()
	}
	topic, err := mailstream.RequestedTopic(*prefix, *priority)
	if err != nil {
		log.Fatal(err)
	}

	request := mailstream.EmailRequested{
		MessageID:        *messageID,
		TenantID:         *tenant,
		FromAddress:      *from,
		To:               []mailstream.Recipient{{Address: *to}},
		Template:         &mailstream.TemplateRef{Name: *template, Locale: optional(*locale)},
		TemplateDataJSON: data,
		RequestedAt:      time.Now(),
	}
	codec, err := mailstream.NewCodec(*schemas, mailstream.EmailRequestedSchema)
	if err != nil {
		log.Fatal(err)
	}
	value, err := codec.Encode(request)
	if err != nil {
		log.Fatal(err)
	}

	client, err := kgo.NewClient(mailstream.ProducerOpts(*bootstrap)...)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The key is the message_id, and no headers are set: as mailstream's own client does.
	record := &kgo.Record{Topic: topic, Key: []byte(*messageID), Value: value}
	if err := client.ProduceSync(ctx, record).FirstErr(); err != nil {
		log.Fatalf("publishing to %s: %v", topic, err)
	}
	err = json.NewEncoder(os.Stdout).Encode(map[string]any{
		"message_id":  *messageID,
		"topic":       record.Topic,
		"partition":   record.Partition,
		"offset":      record.Offset,
		"fingerprint": hex.EncodeToString(codec.Fingerprint),
	})
	if err != nil {
		log.Fatal(err)
	}
}

// newMessageID returns a fresh random id; any 1 to 128 printable ASCII characters will do.
func newMessageID() string {
	return rand.Text()
}

// optional maps "" to null.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
