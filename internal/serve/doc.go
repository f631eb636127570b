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
// is full, never the engine or the other sessions. Rendering is capped at
// the refresh rate (Config.Refresh), so an idle viewer of a busy table
// receives at most one frame diff per refresh.
package serve
