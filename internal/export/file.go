package export

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// FileOptions control WriteFile.
type FileOptions struct {
	// Force allows replacing an existing regular file.
	Force bool
}

// WriteFile writes a file atomically: fn writes the content (buffered) into
// a new temporary file in the same directory, which is synced and then put
// in place in one step, with mode 0600. Readers see either no file (or the
// old one) or the complete new one, never a partial file.
//
// WriteFile refuses to write through a symbolic link at path (ErrSymlink,
// even with Force), to replace anything but a regular file (ErrNotRegular),
// and to replace an existing file unless opt.Force is set (ErrExists; the
// check is atomic: a file created meanwhile is not overwritten either). Any
// failure (fn's error, a full disk, a read-only directory) is returned
// wrapped with the path, and the temporary file is removed.
func WriteFile(path string, opt FileOptions, fn func(io.Writer) error) (err error) {
	if path == "" {
		return errors.New("write file: empty path")
	}
	if fi, err := os.Lstat(path); err == nil && opt.Force && fi.Mode()&(fs.ModeCharDevice|fs.ModeNamedPipe) != 0 {
		return writeDevice(path, fn)
	}
	if err := checkTarget(path, opt.Force); err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: create temporary file: %w", path, err)
	}
	tmpName := tmp.Name()
	placed := false
	defer func() {
		if !placed {
			_ = tmp.Close() // may already be closed; the error is not news
			_ = os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err := fn(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if err := place(tmpName, path, opt.Force); err != nil {
		return err
	}
	placed = true
	syncDir(dir)
	return nil
}

// writeDevice writes to a character device or named pipe (say
// /dev/null, or a FIFO a reader waits on), which --force allows: there is
// no file to replace, only a stream to write.
func writeDevice(path string, fn func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	err = fn(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkTarget checks what is at path now.
func checkTarget(path string, force bool) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("write %s: %w", path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("write %s: %w", path, ErrSymlink)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("write %s: %w", path, ErrNotRegular)
	case !force:
		return fmt.Errorf("write %s: %w", path, ErrExists)
	}
	return nil
}

// place moves the finished temporary file to path. Without force it hard
// links (which fails if path exists, atomically) and removes the temporary
// name; on file systems without hard links it checks again and renames.
// rename(2) replaces a symbolic link itself, never its target.
func place(tmpName, path string, force bool) error {
	if !force {
		err := os.Link(tmpName, path)
		if err == nil {
			_ = os.Remove(tmpName) // the content is in place; a stray name is harmless
			return nil
		}
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write %s: %w", path, checkTargetOrExists(path))
		}
		if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.ENOTSUP) && !errors.Is(err, syscall.EOPNOTSUPP) {
			return fmt.Errorf("write %s: link into place: %w", path, err)
		}
	}
	if err := checkTarget(path, force); err != nil {
		return err
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write %s: rename into place: %w", path, err)
	}
	return nil
}

// checkTargetOrExists explains why path could not be created: a symlink or
// non-regular file that appeared meanwhile, else ErrExists.
func checkTargetOrExists(path string) error {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return ErrSymlink
		}
		if !fi.Mode().IsRegular() {
			return ErrNotRegular
		}
	}
	return ErrExists
}

// syncDir makes the new directory entry durable. It is best effort: the
// file is already complete and in place, and some file systems cannot sync
// a directory.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
