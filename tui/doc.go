// Package tui is conntop's interactive terminal UI, built on Bubble Tea v2:
// a live flow table with a table-pressure header, a filter line, a flow
// detail view, a live transitions view, a group-by view, export and delete.
//
// A Model reads an engine.Engine on a tick (Options.Refresh), never per
// event: each frame asks the store for the visible window of the filtered,
// sorted table and formats only those rows; when nothing changed the
// previous frame is reused. All per-view state lives in the Model, so one
// engine can serve any number of Models (one per SSH session).
//
// Every string that comes from the kernel, the network or another process
// (helper names, process names, the filter text being echoed) goes through
// termsafe.Escape before it reaches the terminal.
package tui
