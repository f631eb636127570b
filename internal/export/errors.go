package export

import "errors"

// Errors callers may test for with errors.Is.
var (
	// ErrExists is returned by WriteFile when the destination exists and
	// FileOptions.Force is not set.
	ErrExists = errors.New("file exists")
	// ErrSymlink is returned by WriteFile when the destination is a
	// symbolic link; it is never followed nor replaced.
	ErrSymlink = errors.New("refusing to write through a symbolic link")
	// ErrNotRegular is returned by WriteFile when the destination exists
	// and is not a regular file (a directory, device, socket or pipe).
	ErrNotRegular = errors.New("not a regular file")
	// ErrFormat is returned for an unknown format name, or a format a
	// writer does not support.
	ErrFormat = errors.New("unsupported format")
)
