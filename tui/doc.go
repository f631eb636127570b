// Package tui is conntop's interactive terminal UI, built on Bubble Tea v2:
// a live flow table with a table-pressure header, a filter line, a flow
// detail view, a live transitions view, a group-by view, a pressure view,
// export and delete.
//
// The Model is split into components the soft-serve way. They share one
// common struct (engine, options, styles, the one keymap, terminal size,
// the data of the last refresh, the filter in use, the pause) and each has
// Update, View, SetSize and a help.KeyMap:
//
//	header       header.go      what is watched, view tabs, gauge, counters, notices
//	filterBar    filterbar.go   the filter line; editing in a bubbles textinput
//	actions      actions.go     export and delete, with their questions
//	flowTable    table.go       the table page (a page is shown below the header)
//	detailPage   detail.go      the selected flow (fidelity.go: kernel details)
//	transitionsPage transitions.go  transition matrix and event stream
//	groupsPage   groups.go      counts by a grouping
//	pressurePage pressure.go    what fills the table (explain)
//	helpPage     helppage.go    every key, from the components' KeyMaps
//	footer       footer.go      status message or key hints
//
// The root Model (model.go) routes: a key goes to the component editing a
// line, else to the component whose KeyMap holds it, else to the page
// shown; clicks go to the page under them. Components ask each other for
// things (show a page, set a status, open a group) by posting messages that
// the root handles before its Update returns, so a key's effects are whole
// before the next key.
//
// A Model reads an engine.Engine on a tick (Options.Refresh), never per
// event: each frame asks the store for the visible window of the filtered,
// sorted table and formats only those rows; when nothing changed the
// previous frame is reused. While a live source lists its table the rows
// are read once a second, like the header's figures. Export, delete-all
// and the still picture of a pause copy rows in commands, never in
// Update. All per-view state lives in the Model, so one engine can serve
// any number of Models (one per SSH session).
//
// Every string that comes from the kernel, the network or another process
// (helper names, process names, the filter text being echoed) goes through
// termsafe.Escape before it reaches the terminal.
package tui
