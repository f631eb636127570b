// Package serve runs `conntop serve`: one engine, many viewers. It serves
// the TUI over SSH (each session with its own model, window size and colour
// profile, read-only, public-key authentication only) and, through
// internal/serve/metrics, Prometheus metrics and a health check over HTTP.
//
// Sessions that run a command instead of a shell get the headless snapshot
// of the shared store streamed back (`ssh -p 2222 host snapshot --format
// csv > flows.csv`).
//
// Every session's Bubble Tea program writes to its own SSH channel: a viewer
// that stops reading blocks only its own program once the channel's window
// is full, never the engine or the other sessions. A session's view changes
// only on its refresh tick (Config.Refresh) or on input, so an idle viewer
// of a busy table receives at most one frame diff per refresh; its renderer
// runs at least 30 frames a second, so a key's answer is not held back to
// the next refresh.
package serve
