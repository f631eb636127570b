package export

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs root, or fails it under CI=true.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true: failing instead of skipping)")
	}
	t.Skip("skipped: this test needs root")
}

// dirNames lists a directory's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

func TestWriteFile(t *testing.T) {
	errFn := errors.New("encoder failed")
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) // prepares dir/out
		force   bool
		fn      func(io.Writer) error
		wantErr error  // nil: success
		want    string // content of dir/out afterwards ("" = must not exist)
		names   []string
	}{
		{name: "new file", fn: writeString("hello\n"), want: "hello\n", names: []string{"out"}},
		{name: "empty content", fn: writeString(""), want: "", names: []string{"out"}},
		{name: "exists", setup: writeFile("old"), fn: writeString("new"), wantErr: ErrExists, want: "old", names: []string{"out"}},
		{name: "exists force", setup: writeFile("old"), force: true, fn: writeString("new"), want: "new", names: []string{"out"}},
		{name: "symlink", setup: symlinkTo("target"), fn: writeString("new"), wantErr: ErrSymlink, names: []string{"out", "target"}},
		{name: "symlink force", setup: symlinkTo("target"), force: true, fn: writeString("new"), wantErr: ErrSymlink, names: []string{"out", "target"}},
		{name: "dangling symlink", setup: func(t *testing.T, dir string) {
			if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "out")); err != nil {
				t.Fatal(err)
			}
		}, fn: writeString("new"), wantErr: ErrSymlink, names: []string{"out"}},
		{name: "directory", setup: func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "out"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, force: true, fn: writeString("new"), wantErr: ErrNotRegular, names: []string{"out"}},
		{name: "fn fails", fn: func(w io.Writer) error {
			_, _ = io.WriteString(w, strings.Repeat("partial ", 20000))
			return errFn
		}, wantErr: errFn},
		{name: "fn fails keeps old", setup: writeFile("old"), force: true, fn: func(io.Writer) error { return errFn },
			wantErr: errFn, want: "old", names: []string{"out"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			path := filepath.Join(dir, "out")
			err := WriteFile(path, FileOptions{Force: tt.force}, tt.fn)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("WriteFile = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the path", err)
			}
			if got := dirNames(t, dir); strings.Join(got, ",") != strings.Join(tt.names, ",") {
				t.Errorf("directory holds %q, want %q (no temporary files)", got, tt.names)
			}
			fi, lerr := os.Lstat(path)
			if lerr != nil || !fi.Mode().IsRegular() {
				return
			}
			b, rerr := os.ReadFile(path)
			if rerr != nil || string(b) != tt.want {
				t.Errorf("content %q, %v; want %q", b, rerr, tt.want)
			}
			if tt.wantErr == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
}

func writeFile(content string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, "out"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func symlinkTo(name string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		target := filepath.Join(dir, name)
		if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, "out")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if b, err := os.ReadFile(target); err != nil || string(b) != "precious" {
				t.Errorf("symlink target changed: %q, %v", b, err)
			}
		})
	}
}

func TestWriteFileNoClobberRace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	// Another process creates the file while the content is written: it
	// must not be overwritten without Force.
	err := WriteFile(path, FileOptions{}, func(w io.Writer) error {
		if err := os.WriteFile(path, []byte("theirs"), 0o644); err != nil {
			return err
		}
		_, err := io.WriteString(w, "ours")
		return err
	})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("WriteFile = %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "theirs" {
		t.Errorf("content %q, want theirs", b)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("directory holds %q, want only out", names)
	}
}

func TestWriteFileBadPaths(t *testing.T) {
	if err := WriteFile("", FileOptions{}, writeString("x")); err == nil {
		t.Error("empty path accepted")
	}
	dir := t.TempDir()
	err := WriteFile(filepath.Join(dir, "missing", "out"), FileOptions{}, writeString("x"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v, want ErrNotExist", err)
	}
}

// mountTmpfs mounts a fresh tmpfs on a new directory for the test.
func mountTmpfs(t *testing.T, flags uintptr, opts string) string {
	t.Helper()
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, opts); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestWriteFileDiskFull(t *testing.T) {
	dir := mountTmpfs(t, 0, "size=64k,mode=0700")
	path := filepath.Join(dir, "snapshot.json")
	big := strings.Repeat("0123456789abcdef", 64<<10/16*4) // 256 KiB > 64 KiB
	err := WriteFile(path, FileOptions{}, writeString(big))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteFile on a full disk = %v, want ENOSPC", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left behind %q", names)
	}
	// The same small file fits: the failure was the disk, not the code.
	if err := WriteFile(path, FileOptions{}, writeString("ok")); err != nil {
		t.Fatalf("small write after ENOSPC: %v", err)
	}
}

func TestWriteFileReadOnlyDir(t *testing.T) {
	// Root ignores directory permissions, so as root the directory is a
	// read-only tmpfs (EROFS); otherwise a directory without write
	// permission (EACCES).
	var dir string
	want := syscall.EROFS
	if os.Geteuid() == 0 {
		dir = mountTmpfs(t, unix.MS_RDONLY, "mode=0755")
	} else {
		dir, want = t.TempDir(), syscall.EACCES
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	}
	path := filepath.Join(dir, "out.csv")
	err := WriteFile(path, FileOptions{Force: true}, writeString("x"))
	if !errors.Is(err, want) {
		t.Fatalf("WriteFile in a read-only directory = %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left behind %q", names)
	}
}

// TestWriteFileDevice: --force writes to a character device such as
// /dev/null (there is no file to replace); without it, it is refused.
func TestWriteFileDevice(t *testing.T) {
	if err := WriteFile(os.DevNull, FileOptions{Force: true}, writeString("x")); err != nil {
		t.Errorf("write /dev/null with force: %v", err)
	}
	if err := WriteFile(os.DevNull, FileOptions{}, writeString("x")); err == nil {
		t.Error("write /dev/null without force: accepted")
	}
	err := WriteFile(os.DevNull, FileOptions{Force: true}, func(io.Writer) error { return errors.New("encoder failed") })
	if err == nil || strings.Count(err.Error(), os.DevNull) != 1 {
		t.Errorf("error %q; want the path named once", err)
	}
}
