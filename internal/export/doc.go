// Package export writes conntop's tables and event streams in the formats of
// DESIGN.md §4: the snapshot JSON (version 1), NDJSON events, CSV, and the
// text line format of conntrack-tools (`conntrack -L` for tables,
// `conntrack -E` for events), plus [WriteFile], which writes a file
// atomically with mode 0600.
//
// Every writer streams: it encodes one flow at a time into a reused buffer,
// so exporting a 262,144-flow table builds no intermediate structure, and
// encoding a flow does not allocate. Strings that come from the kernel or the
// network (helper names) are escaped: JSON escapes every control, C1 and bidi
// character, and the text formats pass them through [termsafe.Escape].
package export
