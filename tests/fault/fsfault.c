/* fsfault.c - a test-only LD_PRELOAD library that makes a file system "full" or "read-only" for the
 * files under one path prefix, while a trigger file exists, so that the policy store's SQLite file can
 * be made unwritable under a running gateway (tests run as root: chmod does not stop root, and
 * mounting a small or read-only file system is often not allowed in CI).
 *
 * Environment (read once, at the first intercepted call):
 *   HSMGATE_FSFAULT_PREFIX   the path prefix: "/tmp/x/policy.db" covers policy.db, -wal and -shm.
 *   HSMGATE_FSFAULT_TRIGGER  a file name: while that file exists, faults are injected. Its content says
 *                            which: "enospc" (the default, also for an empty file), "erofs", or "fsync"
 *                            (writes go through, only the syncs fail, with EIO: a disk that loses what it
 *                            was given, or a thin volume that runs out at writeback). It is read at
 *                            every intercepted call, so a test can switch modes without a restart.
 *   HSMGATE_FSFAULT_LOG      optional: one line per injected fault is appended to this file.
 *
 * What fails, for a descriptor whose path (readlink /proc/self/fd/N) starts with the prefix:
 *   write, pwrite(64), writev, pwritev(64)(v2), fsync, fdatasync, sync_file_range, ftruncate(64),
 *   fallocate(64), posix_fallocate(64) -> -1 with errno ENOSPC or EROFS (posix_fallocate returns it).
 * In erofs mode also, for a path under the prefix: open, open64, openat, openat64, creat(64) and the
 * fortified __open*_2 with O_WRONLY, O_RDWR, O_CREAT or O_TRUNC; truncate(64), unlink, unlinkat.
 * In fsync mode only fsync, fdatasync and sync_file_range fail (EIO); the writes before them land.
 *
 * What Debian 12's libsqlite3 3.40.1 really calls (nm -D; strace of a WAL-mode commit): open64,
 * pwrite64 (database, -wal, and the byte it writes to grow the -shm), fdatasync (its fsync),
 * ftruncate64, unlink, fchown and fchmod (never fail here), mmap64 of the -shm. Writes through that mmap (the
 * wal-index) are plain memory stores and are left alone: a real full or read-only file system does
 * not stop them either once the -shm exists, and SQLite never relies on them reaching the disk.
 *
 * Only calls that go through the dynamic linker are seen (libsqlite3 calls libc that way); libc's own
 * internal calls (stdio's write) are not. Faults are checked with raw syscalls, so the library never
 * calls itself. Under AddressSanitizer the process must be started with
 * ASAN_OPTIONS=verify_asan_link_order=0 (this library then comes before libasan, whose interceptors
 * are reached through RTLD_NEXT like libc). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* glibc's fortified entry points (bits/fcntl2.h declares them only under _FORTIFY_SOURCE). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;
static char prefix[PATH_MAX];
static size_t prefix_len;
static char trigger[PATH_MAX];
static char logpath[PATH_MAX];

static void cfg_read(void)
{
    const char *p = getenv("HSMGATE_FSFAULT_PREFIX");
    const char *t = getenv("HSMGATE_FSFAULT_TRIGGER");
    const char *l = getenv("HSMGATE_FSFAULT_LOG");

    if (p != NULL && p[0] != '\0' && t != NULL && t[0] != '\0' && strlen(p) < sizeof(prefix) &&
        strlen(t) < sizeof(trigger)) {
        snprintf(prefix, sizeof(prefix), "%s", p);
        snprintf(trigger, sizeof(trigger), "%s", t);
        prefix_len = strlen(prefix);
    }
    if (l != NULL && l[0] != '\0' && strlen(l) < sizeof(logpath))
        snprintf(logpath, sizeof(logpath), "%s", l);
}

/* The errno to inject now: 0 when no trigger file exists. Raw syscalls: never our own wrappers. */
static int fault_mode(void)
{
    char buf[16];
    long n;
    int fd;

    (void)pthread_once(&cfg_once, cfg_read);
    if (prefix_len == 0)
        return 0;
    fd = (int)syscall(SYS_openat, AT_FDCWD, trigger, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
    (void)syscall(SYS_close, fd);
    buf[n > 0 ? n : 0] = '\0';
    if (strncmp(buf, "fsync", 5) == 0)
        return EIO;
    return strncmp(buf, "erofs", 5) == 0 ? EROFS : ENOSPC;
}

static int under_prefix(const char *path)
{
    return path != NULL && prefix_len > 0 && strncmp(path, prefix, prefix_len) == 0;
}

static void fault_log(const char *call, const char *path, int e)
{
    char line[PATH_MAX + 64];
    int fd, n;

    if (logpath[0] == '\0')
        return;
    n = snprintf(line, sizeof(line), "fsfault: %s %s -> %s\n", call, path,
                 e == EROFS ? "EROFS" : e == EIO ? "EIO" : "ENOSPC");
    if (n <= 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    fd = (int)syscall(SYS_openat, AT_FDCWD, logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    (void)syscall(SYS_write, fd, line, (size_t)n);
    (void)syscall(SYS_close, fd);
}

/* The errno to fail a write-type call on fd with, or 0 to let it through. is_sync: the call is a sync
 * (the only kind that fails in fsync mode). */
static int fd_fault_check(int fd, const char *call, int is_sync)
{
    char link[64], path[PATH_MAX];
    ssize_t n;
    int e = fault_mode();

    if (e == 0 || fd < 0 || (e == EIO && !is_sync))
        return 0;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    if (!under_prefix(path))
        return 0;
    fault_log(call, path, e);
    return e;
}

/* The checks make system calls of their own: a call let through must find errno as its caller left it. */
static int fd_fault_of(int fd, const char *call, int is_sync)
{
    int saved = errno;
    int e = fd_fault_check(fd, call, is_sync);
    if (e == 0)
        errno = saved;
    return e;
}

static int fd_fault(int fd, const char *call)
{
    return fd_fault_of(fd, call, 0);
}

/* The errno to fail a path-based change with (erofs mode only), or 0. A relative path is taken from
 * dirfd (or the working directory); ".." is not resolved, which the store's absolute paths never need. */
static int path_fault_check(int dirfd, const char *path, const char *call)
{
    char full[PATH_MAX], link[64];
    const char *use = path;
    int e;

    if (path == NULL || (e = fault_mode()) != EROFS)
        return 0;
    if (path[0] != '/') {
        ssize_t n;
        if (dirfd == AT_FDCWD) {
            if (getcwd(full, sizeof(full)) == NULL)
                return 0;
            n = (ssize_t)strlen(full);
        } else {
            snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
            n = readlink(link, full, sizeof(full) - 1);
            if (n <= 0)
                return 0;
        }
        if ((size_t)n + 1 + strlen(path) + 1 > sizeof(full))
            return 0;
        full[n] = '/';
        memcpy(full + n + 1, path, strlen(path) + 1);
        use = full;
    }
    if (!under_prefix(use))
        return 0;
    fault_log(call, use, e);
    return e;
}

static int path_fault(int dirfd, const char *path, const char *call)
{
    int saved = errno;
    int e = path_fault_check(dirfd, path, call);
    if (e == 0)
        errno = saved;
    return e;
}

static int open_writes(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) != 0;
}

/* The next definition of a symbol (libc's, or a sanitizer's interceptor that then calls libc's).
 * Looked up at the first call; concurrent first calls find the same address. */
#define REAL(name, type, ...)                                                                      \
    static type (*real_##name)(__VA_ARGS__);                                                       \
    static type (*get_##name(void))(__VA_ARGS__)                                                   \
    {                                                                                              \
        type (*f)(__VA_ARGS__) = __atomic_load_n(&real_##name, __ATOMIC_ACQUIRE);                  \
        if (f == NULL) {                                                                           \
            *(void **)&f = dlsym(RTLD_NEXT, #name);                                                \
            __atomic_store_n(&real_##name, f, __ATOMIC_RELEASE);                                   \
        }                                                                                          \
        return f;                                                                                  \
    }

/* A missing next symbol is ENOSYS rather than a crash. */
#define CALL_OR_ENOSYS(name, ...)                                                                  \
    do {                                                                                           \
        if (get_##name() == NULL) {                                                                \
            errno = ENOSYS;                                                                        \
            return -1;                                                                             \
        }                                                                                          \
        return get_##name()(__VA_ARGS__);                                                          \
    } while (0)

#define FD_GUARD(fd, call)                                                                         \
    do {                                                                                           \
        int e_ = fd_fault((fd), (call));                                                           \
        if (e_ != 0) {                                                                             \
            errno = e_;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

#define SYNC_GUARD(fd, call)                                                                       \
    do {                                                                                           \
        int e_ = fd_fault_of((fd), (call), 1);                                                     \
        if (e_ != 0) {                                                                             \
            errno = e_;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

#define PATH_GUARD(dirfd, path, call)                                                              \
    do {                                                                                           \
        int e_ = path_fault((dirfd), (path), (call));                                              \
        if (e_ != 0) {                                                                             \
            errno = e_;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------- writes on descriptors */

REAL(write, ssize_t, int, const void *, size_t)
REAL(pwrite, ssize_t, int, const void *, size_t, off_t)
REAL(pwrite64, ssize_t, int, const void *, size_t, off64_t)
REAL(writev, ssize_t, int, const struct iovec *, int)
REAL(pwritev, ssize_t, int, const struct iovec *, int, off_t)
REAL(pwritev64, ssize_t, int, const struct iovec *, int, off64_t)
REAL(pwritev2, ssize_t, int, const struct iovec *, int, off_t, int)
REAL(pwritev64v2, ssize_t, int, const struct iovec *, int, off64_t, int)
REAL(fsync, int, int)
REAL(fdatasync, int, int)
REAL(sync_file_range, int, int, off64_t, off64_t, unsigned int)
REAL(ftruncate, int, int, off_t)
REAL(ftruncate64, int, int, off64_t)
REAL(fallocate, int, int, int, off_t, off_t)
REAL(fallocate64, int, int, int, off64_t, off64_t)
REAL(posix_fallocate, int, int, off_t, off_t)
REAL(posix_fallocate64, int, int, off64_t, off64_t)

ssize_t write(int fd, const void *buf, size_t n)
{
    FD_GUARD(fd, "write");
    CALL_OR_ENOSYS(write, fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    FD_GUARD(fd, "pwrite");
    CALL_OR_ENOSYS(pwrite, fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    FD_GUARD(fd, "pwrite64");
    CALL_OR_ENOSYS(pwrite64, fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    FD_GUARD(fd, "writev");
    CALL_OR_ENOSYS(writev, fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    FD_GUARD(fd, "pwritev");
    CALL_OR_ENOSYS(pwritev, fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    FD_GUARD(fd, "pwritev64");
    CALL_OR_ENOSYS(pwritev64, fd, iov, cnt, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    FD_GUARD(fd, "pwritev2");
    CALL_OR_ENOSYS(pwritev2, fd, iov, cnt, off, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags)
{
    FD_GUARD(fd, "pwritev64v2");
    CALL_OR_ENOSYS(pwritev64v2, fd, iov, cnt, off, flags);
}

int fsync(int fd)
{
    SYNC_GUARD(fd, "fsync");
    CALL_OR_ENOSYS(fsync, fd);
}

int fdatasync(int fd)
{
    SYNC_GUARD(fd, "fdatasync");
    CALL_OR_ENOSYS(fdatasync, fd);
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
    SYNC_GUARD(fd, "sync_file_range");
    CALL_OR_ENOSYS(sync_file_range, fd, off, n, flags);
}

int ftruncate(int fd, off_t len)
{
    FD_GUARD(fd, "ftruncate");
    CALL_OR_ENOSYS(ftruncate, fd, len);
}

int ftruncate64(int fd, off64_t len)
{
    FD_GUARD(fd, "ftruncate64");
    CALL_OR_ENOSYS(ftruncate64, fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    FD_GUARD(fd, "fallocate");
    CALL_OR_ENOSYS(fallocate, fd, mode, off, len);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
    FD_GUARD(fd, "fallocate64");
    CALL_OR_ENOSYS(fallocate64, fd, mode, off, len);
}

/* posix_fallocate returns the error number; errno is left alone (POSIX). */
int posix_fallocate(int fd, off_t off, off_t len)
{
    int e = fd_fault(fd, "posix_fallocate");
    if (e != 0)
        return e;
    return get_posix_fallocate() != NULL ? get_posix_fallocate()(fd, off, len) : ENOSYS;
}

int posix_fallocate64(int fd, off64_t off, off64_t len)
{
    int e = fd_fault(fd, "posix_fallocate64");
    if (e != 0)
        return e;
    return get_posix_fallocate64() != NULL ? get_posix_fallocate64()(fd, off, len) : ENOSYS;
}

/* ---------------------------------------------------------------- erofs: opening for writing, removing */

REAL(open, int, const char *, int, ...)
REAL(open64, int, const char *, int, ...)
REAL(openat, int, int, const char *, int, ...)
REAL(openat64, int, int, const char *, int, ...)
REAL(__open_2, int, const char *, int)
REAL(__open64_2, int, const char *, int)
REAL(__openat_2, int, int, const char *, int)
REAL(__openat64_2, int, int, const char *, int)
REAL(creat, int, const char *, mode_t)
REAL(creat64, int, const char *, mode_t)
REAL(truncate, int, const char *, off_t)
REAL(truncate64, int, const char *, off64_t)
REAL(unlink, int, const char *)
REAL(unlinkat, int, int, const char *, int)

/* The mode argument exists only when the flags create a file (open(2)). */
#define OPEN_MODE(flags, last, mode)                                                               \
    do {                                                                                           \
        if (((flags) & O_CREAT) != 0 || ((flags) & O_TMPFILE) == O_TMPFILE) {                      \
            va_list ap_;                                                                           \
            va_start(ap_, last);                                                                   \
            mode = (mode_t)va_arg(ap_, int);                                                       \
            va_end(ap_);                                                                           \
        }                                                                                          \
    } while (0)

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    if (open_writes(flags))
        PATH_GUARD(AT_FDCWD, path, "open");
    CALL_OR_ENOSYS(open, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    if (open_writes(flags))
        PATH_GUARD(AT_FDCWD, path, "open64");
    CALL_OR_ENOSYS(open64, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    if (open_writes(flags))
        PATH_GUARD(dirfd, path, "openat");
    CALL_OR_ENOSYS(openat, dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    if (open_writes(flags))
        PATH_GUARD(dirfd, path, "openat64");
    CALL_OR_ENOSYS(openat64, dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags)
{
    if (open_writes(flags))
        PATH_GUARD(AT_FDCWD, path, "__open_2");
    CALL_OR_ENOSYS(__open_2, path, flags);
}

int __open64_2(const char *path, int flags)
{
    if (open_writes(flags))
        PATH_GUARD(AT_FDCWD, path, "__open64_2");
    CALL_OR_ENOSYS(__open64_2, path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
    if (open_writes(flags))
        PATH_GUARD(dirfd, path, "__openat_2");
    CALL_OR_ENOSYS(__openat_2, dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
    if (open_writes(flags))
        PATH_GUARD(dirfd, path, "__openat64_2");
    CALL_OR_ENOSYS(__openat64_2, dirfd, path, flags);
}

int creat(const char *path, mode_t mode)
{
    PATH_GUARD(AT_FDCWD, path, "creat");
    CALL_OR_ENOSYS(creat, path, mode);
}

int creat64(const char *path, mode_t mode)
{
    PATH_GUARD(AT_FDCWD, path, "creat64");
    CALL_OR_ENOSYS(creat64, path, mode);
}

int truncate(const char *path, off_t len)
{
    PATH_GUARD(AT_FDCWD, path, "truncate");
    CALL_OR_ENOSYS(truncate, path, len);
}

int truncate64(const char *path, off64_t len)
{
    PATH_GUARD(AT_FDCWD, path, "truncate64");
    CALL_OR_ENOSYS(truncate64, path, len);
}

int unlink(const char *path)
{
    PATH_GUARD(AT_FDCWD, path, "unlink");
    CALL_OR_ENOSYS(unlink, path);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    PATH_GUARD(dirfd, path, "unlinkat");
    CALL_OR_ENOSYS(unlinkat, dirfd, path, flags);
}
