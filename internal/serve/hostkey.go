package serve

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	gossh "golang.org/x/crypto/ssh"
)

// maxKeyFile bounds the size of key files read.
const maxKeyFile = 1 << 20

// loadOrCreateHostKey returns the PEM host key at path, creating an ed25519
// key there (mode 0600, parent directories 0700) when the file does not
// exist. An existing key that others may read, or anyone but its owner may
// write, is refused. (Group read is allowed: a Kubernetes Secret volume
// shared with the pod's fsGroup needs mode 0440. Symlinks are followed
// for the same reason: Secret volumes are made of them.) created says
// whether the key is new.
func loadOrCreateHostKey(path string) (pemBytes []byte, signer gossh.Signer, created bool, err error) {
	pemBytes, err = readPrivateFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		pemBytes, err = createHostKey(path)
		created = true
	}
	if err != nil {
		return nil, nil, false, err
	}
	signer, err = gossh.ParsePrivateKey(pemBytes)
	if err != nil {
		return nil, nil, false, fmt.Errorf("host key %s: %w", path, err)
	}
	return pemBytes, signer, created, nil
}

// readPrivateFile reads a private key file, refusing files that others may
// read, that group or others may write, or that someone other than root
// or the running user owns (see readKeyFile).
func readPrivateFile(path string) ([]byte, error) {
	b, err := readKeyFile(path, "host key", 0o027)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// createHostKey writes a new ed25519 host key to path (never replacing an
// existing file) and returns it as PEM.
func createHostKey(path string) ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "conntop host key")
	if err != nil {
		return nil, fmt.Errorf("encode host key: %w", err)
	}
	b := pem.EncodeToMemory(block)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create host key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create host key: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("write host key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("write host key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write host key %s: %w", path, err)
	}
	return b, nil
}
