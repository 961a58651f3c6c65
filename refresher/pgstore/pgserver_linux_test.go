package pgstore_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// binDirEnv names a directory holding initdb and postgres, for a
// PostgreSQL installed somewhere other than Debian's
// /usr/lib/postgresql/<version>/bin.
const binDirEnv = "PG_BIN"

// startPostgres initialises a throw-away cluster in a temporary directory
// and starts postgres on it, listening on 127.0.0.1 at a free port with
// fsync off, and returns its DSN and the function that stops it and
// removes the directory. If PostgreSQL is not installed or does not start,
// it returns why instead.
func startPostgres() (dsn string, stop func(), unavailable string) {
	bin, why := findPostgresBin()
	if why != "" {
		return "", nil, why
	}
	// postgres refuses to run as root: run it as the postgres user that
	// Debian's package creates.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, "running as root and there is no postgres user to run PostgreSQL as: " + err.Error()
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	base, err := os.MkdirTemp("", "pgstore-test-")
	if err != nil {
		return "", nil, err.Error()
	}
	fail := func(format string, args ...any) (string, func(), string) {
		os.RemoveAll(base)
		return "", nil, fmt.Sprintf(format, args...)
	}
	if cred != nil {
		if err := os.Chown(base, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail("chown %s: %v", base, err)
		}
	}
	data, sock := filepath.Join(base, "data"), filepath.Join(base, "sock")
	initdb := command(cred, base, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail("initdb failed: %v\n%s", err, out)
	}
	mkdir := command(cred, base, "mkdir", "-m", "0700", sock)
	if out, err := mkdir.CombinedOutput(); err != nil {
		return fail("mkdir %s: %v\n%s", sock, err, out)
	}

	// Another program may take the free port between our probe and the
	// server's bind: try a few.
	var failures []string
	for try := range 5 {
		port, err := freePort()
		if err != nil {
			return fail("%v", err)
		}
		logPath := filepath.Join(base, fmt.Sprintf("postgres-%d.log", try))
		stop, err := tryStartPostgres(cred, base, filepath.Join(bin, "postgres"), data, sock, port, logPath)
		if err == nil {
			return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
				func() { stop(); os.RemoveAll(base) }, ""
		}
		out, _ := os.ReadFile(logPath)
		failures = append(failures, fmt.Sprintf("%v\n%s", err, out))
	}
	return fail("postgres did not start:\n%s", strings.Join(failures, "\n---\n"))
}

// tryStartPostgres starts postgres once and waits until it accepts
// connections, and returns the function that stops it.
func tryStartPostgres(cred *syscall.Credential, dir, bin, data, sock string, port int, logPath string) (stop func(), err error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := command(cred, dir, bin, "-D", data, "-p", strconv.Itoa(port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies without stopping it, postgres goes too.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop = func() {
		cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
		<-exited
		timer.Stop()
	}

	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=1", port)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("postgres did not accept connections within 30s: %w", err)
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("postgres exited: %v", cmd.ProcessState)
		case <-tick.C:
		}
	}
}

// findPostgresBin returns the directory of initdb and postgres: the one
// binDirEnv names, else the newest of Debian's.
func findPostgresBin() (dir, unavailable string) {
	if dir := os.Getenv(binDirEnv); dir != "" {
		if !isFile(filepath.Join(dir, "postgres")) || !isFile(filepath.Join(dir, "initdb")) {
			return "", fmt.Sprintf("%s=%s holds no postgres and initdb", binDirEnv, dir)
		}
		return dir, ""
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	dirs = slices.DeleteFunc(dirs, func(d string) bool {
		return !isFile(filepath.Join(d, "postgres")) || !isFile(filepath.Join(d, "initdb"))
	})
	if len(dirs) == 0 {
		return "", "PostgreSQL is not installed (on Debian: apt-get install postgresql; or set " +
			binDirEnv + " to the directory of initdb and postgres, or " + dsnEnv + " to a server to use)"
	}
	version := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	return slices.MaxFunc(dirs, func(a, b string) int { return version(a) - version(b) }), ""
}

// command returns a command that runs in dir, as the user of cred if it is
// not nil.
func command(cred *syscall.Credential, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
