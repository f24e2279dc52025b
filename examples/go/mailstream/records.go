package mailstream

import "time"

// The public records, field for field as schemas/mailstream.v1.*.avsc declare them.
// A union with null is a pointer; an enum is its symbol; a timestamp-millis is a time.Time.

// EmailRequested asks mailstream to send one email.
type EmailRequested struct {
	MessageID        string            `avro:"message_id"`
	TenantID         string            `avro:"tenant_id"`
	FromAddress      string            `avro:"from_address"`
	FromName         *string           `avro:"from_name"`
	ReplyTo          *string           `avro:"reply_to"`
	To               []Recipient       `avro:"to"`
	Cc               []Recipient       `avro:"cc"`
	Bcc              []Recipient       `avro:"bcc"`
	Subject          *string           `avro:"subject"`
	TextBody         *string           `avro:"text_body"`
	HTMLBody         *string           `avro:"html_body"`
	Template         *TemplateRef      `avro:"template"`
	TemplateDataJSON *string           `avro:"template_data_json"`
	Headers          map[string]string `avro:"headers"`
	Attachments      []Attachment      `avro:"attachments"`
	Tags             map[string]string `avro:"tags"`
	ExpiresAt        *time.Time        `avro:"expires_at"`
	SendAt           *time.Time        `avro:"send_at"`
	RequestedAt      time.Time         `avro:"requested_at"`
}

// Recipient is one address of To, Cc or Bcc.
type Recipient struct {
	Address string  `avro:"address"`
	Name    *string `avro:"name"`
}

// TemplateRef names a template applied with `mailstream templates apply`; no version
// means the newest, no locale the template's default one.
type TemplateRef struct {
	Name    string  `avro:"name"`
	Version *int    `avro:"version"`
	Locale  *string `avro:"locale"`
}

// Attachment is one file sent with the message.
type Attachment struct {
	Filename    string `avro:"filename"`
	ContentType string `avro:"content_type"`
	Content     []byte `avro:"content"`
}

// EmailEvent is one step in the life of one recipient of one message (email.events).
type EmailEvent struct {
	EventID       string            `avro:"event_id" json:"event_id"`
	MessageID     string            `avro:"message_id" json:"message_id"`
	TenantID      string            `avro:"tenant_id" json:"tenant_id"`
	Priority      string            `avro:"priority" json:"priority"`
	Recipient     *string           `avro:"recipient" json:"recipient"`
	Type          string            `avro:"type" json:"type"`
	OccurredAt    time.Time         `avro:"occurred_at" json:"occurred_at"`
	Attempt       int               `avro:"attempt" json:"attempt"`
	Reason        *string           `avro:"reason" json:"reason"`
	SMTP          *SmtpReply        `avro:"smtp" json:"smtp"`
	Bounce        *Bounce           `avro:"bounce" json:"bounce"`
	NextAttemptAt *time.Time        `avro:"next_attempt_at" json:"next_attempt_at"`
	Tags          map[string]string `avro:"tags" json:"tags"`
}

// Terminal reports whether no event follows this one for its recipient: every type but
// ACCEPTED and DEFERRED.
func (e *EmailEvent) Terminal() bool {
	return e.Type != "ACCEPTED" && e.Type != "DEFERRED"
}

// SmtpReply is what the receiving server last answered.
type SmtpReply struct {
	Code         int     `avro:"code" json:"code"`
	EnhancedCode *string `avro:"enhanced_code" json:"enhanced_code"`
	Text         string  `avro:"text" json:"text"`
	MxHost       *string `avro:"mx_host" json:"mx_host"`
	TLSVersion   *string `avro:"tls_version" json:"tls_version"`
}

// Bounce says why a recipient bounced: Kind is HARD or SOFT.
type Bounce struct {
	Kind     string `avro:"kind" json:"kind"`
	Category string `avro:"category" json:"category"`
}
