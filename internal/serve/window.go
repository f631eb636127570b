package serve

import (
	"sync"

	"charm.land/ssh"
)

// windowFeed carries one session channel's window changes from its request
// filter (filterRequests) to its session (Server.watch), which hands the
// latest to the session's program at most once a frame.
//
// Window changes never reach charm.land/ssh: its request loop writes the
// new size into the session's Pty without a lock, while sess.Pty() (and
// wish's bubbletea.MakeOptions, which calls it) read it from the session's
// goroutine; so with window changes kept here, the Pty charm.land/ssh holds
// is written once, by the pty-req, before the session starts.
type windowFeed struct {
	mu       sync.Mutex
	width    int
	height   int
	changed  bool   // a size not yet taken
	received uint64 // window changes accepted
	// closed is closed once the client has closed the channel and the
	// filter has taken all its requests.
	closed chan struct{}
}

func newWindowFeed() *windowFeed { return &windowFeed{closed: make(chan struct{})} }

// put records a window change to width×height (already clamped).
func (f *windowFeed) put(width, height int) {
	f.mu.Lock()
	f.width, f.height, f.changed = width, height, true
	f.received++
	f.mu.Unlock()
}

// take returns the latest size if one came since the last take.
func (f *windowFeed) take() (width, height int, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.changed {
		return 0, 0, false
	}
	f.changed = false
	return f.width, f.height, true
}

// count is how many window changes were accepted.
func (f *windowFeed) count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received
}

// windowFeedKey is the context key of a channel's *windowFeed.
type windowFeedKey struct{}

// channelContext is the connection's context as one session channel sees
// it: the same, plus the channel's windowFeed (charm.land/ssh gives every
// channel of a connection the same context, and a session no other way to
// reach its channel).
type channelContext struct {
	ssh.Context
	feed *windowFeed
}

func (c channelContext) Value(key any) any {
	if key == (windowFeedKey{}) {
		return c.feed
	}
	return c.Context.Value(key)
}

// feedOf returns the window feed of a session's channel (nil if it has
// none).
func feedOf(ctx ssh.Context) *windowFeed {
	f, _ := ctx.Value(windowFeedKey{}).(*windowFeed)
	return f
}
