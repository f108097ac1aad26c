package main

// The two JetStream plugins of the peer, written against nats.go's jetstream package and registered with
// Benthos core (which ships no NATS component):
//
//   - output `peer_jetstream`: one synchronous JetStream publish per message; Write returns only once the
//     PubAck arrived, so Benthos acks the transaction (and the http_server input answers) after the store.
//   - input `peer_jetstream`: a durable pull consumer with explicit ack; each message is handed to Benthos
//     with an AckFunc that acks it only when Benthos reports success (the output returned nil, i.e. the
//     http_client output got a 2xx) and naks it otherwise, so JetStream redelivers it.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redpanda-data/benthos/v4/public/service"
)

const pluginName = "peer_jetstream"

const defaultHeaderPattern = `(?i)^(ce-|content-type$)`

func init() {
	service.MustRegisterOutput(pluginName, outputSpec(), newJetStreamOutput)
	service.MustRegisterInput(pluginName, inputSpec(), newJetStreamInput)
}

func connect(urls []string, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// --- output ---------------------------------------------------------------------------------------------

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Summary("Publishes each message to JetStream and returns only after its PubAck.").
		Field(service.NewStringListField("urls")).
		Field(service.NewStringField("subject")).
		Field(service.NewStringField("header_pattern").Default(defaultHeaderPattern).
			Description("Metadata keys copied to NATS headers (http_server puts the request headers there).")).
		Field(service.NewBoolField("dedup").Default(true).
			Description("Set Nats-Msg-Id to ce-source and ce-id, as Ripple's ingress does (JetStream dedup).")).
		Field(service.NewBoolField("sync_response").Default(true).
			Description("After the PubAck, add an empty synchronous response, so that http_server answers with " +
				"its sync_response.status (e.g. 202) instead of an implicit 200.")).
		Field(service.NewDurationField("publish_timeout").Default("5s")).
		Field(service.NewOutputMaxInFlightField())
}

type jetStreamOutput struct {
	urls         []string
	subject      string
	headers      *regexp.Regexp
	dedup        bool
	syncResponse bool
	timeout      time.Duration

	mu sync.RWMutex
	nc *nats.Conn
	js jetstream.JetStream
}

func newJetStreamOutput(conf *service.ParsedConfig, _ *service.Resources) (service.Output, int, error) {
	o := &jetStreamOutput{}
	var err error
	if o.urls, err = conf.FieldStringList("urls"); err != nil {
		return nil, 0, err
	}
	if o.subject, err = conf.FieldString("subject"); err != nil {
		return nil, 0, err
	}
	pattern, err := conf.FieldString("header_pattern")
	if err != nil {
		return nil, 0, err
	}
	if o.headers, err = regexp.Compile(pattern); err != nil {
		return nil, 0, err
	}
	if o.dedup, err = conf.FieldBool("dedup"); err != nil {
		return nil, 0, err
	}
	if o.syncResponse, err = conf.FieldBool("sync_response"); err != nil {
		return nil, 0, err
	}
	if o.timeout, err = conf.FieldDuration("publish_timeout"); err != nil {
		return nil, 0, err
	}
	maxInFlight, err := conf.FieldMaxInFlight()
	if err != nil {
		return nil, 0, err
	}
	return o, maxInFlight, nil
}

func (o *jetStreamOutput) Connect(context.Context) error {
	nc, js, err := connect(o.urls, "benthos-peer ingest")
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.nc, o.js = nc, js
	o.mu.Unlock()
	return nil
}

func (o *jetStreamOutput) Write(ctx context.Context, msg *service.Message) error {
	o.mu.RLock()
	js := o.js
	o.mu.RUnlock()
	if js == nil {
		return service.ErrNotConnected
	}
	body, err := msg.AsBytes()
	if err != nil {
		return err
	}
	out := nats.NewMsg(o.subject)
	out.Data = body
	_ = msg.MetaWalk(func(k, v string) error {
		if o.headers.MatchString(k) {
			out.Header.Set(strings.ToLower(k), v)
		}
		return nil
	})
	if o.dedup {
		source, _ := msg.MetaGet("Ce-Source")
		id, _ := msg.MetaGet("Ce-Id")
		if id != "" {
			out.Header.Set(jetstream.MsgIDHeader, source+" "+id)
		}
	}
	pubCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if _, err := js.PublishMsg(pubCtx, out); err != nil { // blocks until the PubAck (or an error)
		return fmt.Errorf("publish: %w", err)
	}
	if o.syncResponse {
		// Stored: only now mark the (empty) answer for http_server; Benthos acks the transaction when this
		// Write returns nil, and http_server answers only after that ack.
		reply := msg.Copy()
		reply.SetBytes(nil)
		_ = reply.AddSyncResponse() // fails harmlessly when the input has no sync responses
	}
	return nil
}

func (o *jetStreamOutput) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nc != nil {
		_ = o.nc.Drain()
		o.nc, o.js = nil, nil
	}
	return nil
}

// --- input ----------------------------------------------------------------------------------------------

func inputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Summary("Reads a durable JetStream pull consumer; acks each message only after the output succeeded.").
		Field(service.NewStringListField("urls")).
		Field(service.NewStringField("stream")).
		Field(service.NewStringField("durable")).
		Field(service.NewStringField("subject").Default("")).
		Field(service.NewStringField("deliver").Default("all").Description("all or new")).
		Field(service.NewDurationField("ack_wait").Default("30s")).
		Field(service.NewIntField("max_ack_pending").Default(1000)).
		Field(service.NewIntField("pull_batch").Default(256).
			Description("Messages the client keeps buffered from its pull requests (PullMaxMessages).")).
		Field(service.NewStringField("header_pattern").Default(".*").
			Description("NATS headers copied to metadata (and from there, by http_client's metadata filter, " +
				"to the HTTP request)."))
}

type jetStreamInput struct {
	urls          []string
	stream        string
	durable       string
	subject       string
	deliver       jetstream.DeliverPolicy
	ackWait       time.Duration
	maxAckPending int
	pullBatch     int
	headers       *regexp.Regexp

	mu   sync.Mutex
	nc   *nats.Conn
	iter jetstream.MessagesContext
}

func newJetStreamInput(conf *service.ParsedConfig, _ *service.Resources) (service.Input, error) {
	i := &jetStreamInput{}
	var err error
	if i.urls, err = conf.FieldStringList("urls"); err != nil {
		return nil, err
	}
	if i.stream, err = conf.FieldString("stream"); err != nil {
		return nil, err
	}
	if i.durable, err = conf.FieldString("durable"); err != nil {
		return nil, err
	}
	if i.subject, err = conf.FieldString("subject"); err != nil {
		return nil, err
	}
	deliver, err := conf.FieldString("deliver")
	if err != nil {
		return nil, err
	}
	switch deliver {
	case "all":
		i.deliver = jetstream.DeliverAllPolicy
	case "new":
		i.deliver = jetstream.DeliverNewPolicy
	default:
		return nil, fmt.Errorf("deliver: want all or new, got %q", deliver)
	}
	if i.ackWait, err = conf.FieldDuration("ack_wait"); err != nil {
		return nil, err
	}
	if i.maxAckPending, err = conf.FieldInt("max_ack_pending"); err != nil {
		return nil, err
	}
	if i.pullBatch, err = conf.FieldInt("pull_batch"); err != nil {
		return nil, err
	}
	pattern, err := conf.FieldString("header_pattern")
	if err != nil {
		return nil, err
	}
	if i.headers, err = regexp.Compile(pattern); err != nil {
		return nil, err
	}
	return i, nil
}

func (i *jetStreamInput) Connect(ctx context.Context) error {
	nc, js, err := connect(i.urls, "benthos-peer deliver")
	if err != nil {
		return err
	}
	consumer, err := js.CreateOrUpdateConsumer(ctx, i.stream, jetstream.ConsumerConfig{
		Durable:       i.durable,
		DeliverPolicy: i.deliver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       i.ackWait,
		MaxAckPending: i.maxAckPending,
		FilterSubject: i.subject,
	})
	if err != nil {
		nc.Close()
		return fmt.Errorf("consumer %s on %s: %w", i.durable, i.stream, err)
	}
	iter, err := consumer.Messages(jetstream.PullMaxMessages(i.pullBatch))
	if err != nil {
		nc.Close()
		return err
	}
	i.mu.Lock()
	i.nc, i.iter = nc, iter
	i.mu.Unlock()
	return nil
}

func (i *jetStreamInput) Read(ctx context.Context) (*service.Message, service.AckFunc, error) {
	i.mu.Lock()
	iter := i.iter
	i.mu.Unlock()
	if iter == nil {
		return nil, nil, service.ErrNotConnected
	}
	m, err := iter.Next(jetstream.NextContext(ctx))
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil, nil, service.ErrNotConnected
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, err
	}
	msg := service.NewMessage(m.Data())
	for k, vs := range m.Headers() {
		if len(vs) > 0 && i.headers.MatchString(k) {
			msg.MetaSetMut(k, vs[0])
		}
	}
	// Called by Benthos once the output is done with the message: err is nil only if http_client got a 2xx
	// (after its own retries); until then the message stays unacked in JetStream (AckWait redelivers it if
	// this process dies).
	return msg, func(_ context.Context, err error) error {
		if err != nil {
			return m.Nak()
		}
		return m.Ack()
	}, nil
}

func (i *jetStreamInput) Close(context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.iter != nil {
		i.iter.Stop()
		i.iter = nil
	}
	if i.nc != nil {
		_ = i.nc.Drain()
		i.nc = nil
	}
	return nil
}
