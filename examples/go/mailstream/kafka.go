package mailstream

import (
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The full names of the public schemas, and the names of their files in schemas/.
const (
	EmailRequestedSchema = "mailstream.v1.EmailRequested"
	EmailEventSchema     = "mailstream.v1.EmailEvent"
)

// Priorities are the symbols of mailstream.v1.Priority; each has a request topic.
var Priorities = []string{"CRITICAL", "TRANSACTIONAL", "BULK"}

// RequestedTopic is the topic a request of this priority is published to: the topic is
// the priority, there is no priority field. prefix is the deployment's topic prefix
// (MAILSTREAM_KAFKA__TOPIC_PREFIX), usually empty.
func RequestedTopic(prefix, priority string) (string, error) {
	for _, p := range Priorities {
		if strings.EqualFold(priority, p) {
			return prefix + "email.requested." + strings.ToLower(p), nil
		}
	}
	return "", fmt.Errorf("priority %q is none of %v", priority, Priorities)
}

// EventsTopic carries every EmailEvent, keyed by message_id.
func EventsTopic(prefix string) string {
	return prefix + "email.events"
}

// Env returns the environment variable name, or fallback when it is unset: the variables
// mailstream's own services read (deploy/local/dev.env), so one `set -a; . dev.env`
// configures this example too.
func Env(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}

// ProducerOpts mirror the producer settings of mailstream's Python client
// (services/common/kafka/settings.py): acks from all in-sync replicas and idempotence
// (franz-go's defaults), lz4, a 2 ms linger, and a bounded delivery timeout.
func ProducerOpts(bootstrap string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.ClientID("mailstream"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.RecordDeliveryTimeout(120 * time.Second),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(librdkafkaConsistent)),
	}
}

// librdkafkaConsistent places a key as the Python client (librdkafka's default
// "consistent_random" partitioner) does: CRC-32 (IEEE) of the key modulo the partition
// count, so a message_id lands on the same partition whichever language sent it.
// (franz-go's default would hash with murmur2, as Java does.)
func librdkafkaConsistent(key []byte, partitions int) int {
	return int(crc32.ChecksumIEEE(key) % uint32(partitions))
}
