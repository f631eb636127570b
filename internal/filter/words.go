package filter

import "slices"

// Keywords returns the words of the filter language (primitives, qualifiers
// and operators), for shell completion and help. State names are
// flow.State and flow.TCPState names.
func Keywords() []string {
	return slices.Clone(keywords)
}
