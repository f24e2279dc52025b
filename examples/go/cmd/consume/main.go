// Command consume reads email.events until the terminal event of one message, printing
// each of that message's events as a JSON line. It exits 0 only when the message was
// DELIVERED.
//
//	consume -tenant acme -message-id MESSAGE_ID
//
// It joins no consumer group and commits nothing: it reads every partition from -since
// ago, which is all a one-off watcher needs. A service that acts on events would consume
// in a group and commit after handling.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"mailstream.test/example/mailstream"
)

func main() {
	bootstrap := flag.String("bootstrap", mailstream.Env("MAILSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"), "Kafka bootstrap servers")
	prefix := flag.String("topic-prefix", mailstream.Env("MAILSTREAM_KAFKA__TOPIC_PREFIX", ""), "the deployment's topic prefix")
	schemas := flag.String("schemas", "../../schemas", "the repository's schemas/ folder")
	tenant := flag.String("tenant", "", "tenant id")
	messageID := flag.String("message-id", "", "the message to follow")
	since := flag.Duration("since", 10*time.Minute, "read events from this long ago")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	if *tenant == "" || *messageID == "" {
		log.Fatal("-tenant and -message-id are required")
	}

	codec, err := mailstream.NewCodec(*schemas, mailstream.EmailEventSchema)
	if err != nil {
		log.Fatal(err)
	}
	client, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(*bootstrap, ",")...),
		kgo.ClientID("mailstream-example-consume"),
		kgo.ConsumeTopics(mailstream.EventsTopic(*prefix)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(time.Now().Add(-*since).UnixMilli())),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	out := json.NewEncoder(os.Stdout)
	for {
		fetches := client.PollFetches(ctx)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			log.Fatalf("no terminal event for %s within %s", *messageID, *timeout)
		}
		if err := fetches.Err(); err != nil {
			log.Fatal(err)
		}
		for it := fetches.RecordIter(); !it.Done(); {
			record := it.Next()
			// Events are keyed by message_id, but a message id is only unique within its
			// tenant: the decoded event says whose it is.
			if string(record.Key) != *messageID {
				continue
			}
			var event mailstream.EmailEvent
			if err := codec.Decode(record.Value, &event); err != nil {
				log.Fatalf("%s/%d@%d: %v", record.Topic, record.Partition, record.Offset, err)
			}
			if event.TenantID != *tenant {
				continue
			}
			if err := out.Encode(event); err != nil {
				log.Fatal(err)
			}
			if event.Terminal() {
				if event.Type != "DELIVERED" {
					log.Fatalf("%s ended %s, not DELIVERED", *messageID, event.Type)
				}
				return
			}
		}
	}
}
