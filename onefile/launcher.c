/*
 * The single-file PocketStack binary: this launcher, followed by a payload (PyInstaller's onedir
 * build of the server, default models included) and a trailer that locates it.
 *
 * Why not PyInstaller's own onefile mode: it unpacks the whole archive into a fresh temporary
 * folder on every launch and deletes it on exit, which costs seconds with the models inside and
 * copies them on every start. This launcher unpacks a given build once, into a per-build folder
 * of a cache, and from then on exec()s the unpacked program: a start costs what an onedir start
 * costs, the models are memory-mapped from the cache, and the server is the launched process
 * itself (signals, exit status and the process id are its own).
 *
 * Cache folder: $POCKETSTACK_CACHE, else $XDG_CACHE_HOME/pocketstack, else ~/.cache/pocketstack,
 * else $TMPDIR (or /tmp)/pocketstack-<uid>. A build unpacks into a private temporary folder that
 * is renamed into place only when complete, so a crash or a concurrent first launch never leaves
 * a half-unpacked build behind. Folders not owned by the user, or writable by others, are refused.
 *
 * Payload format (little endian), written by onefile/pack.py:
 *   trailer (last 88 bytes): "PSTKPAY1", u64 payload offset, u64 payload size, 64 hex chars key
 *   entry: u8 kind ('d' folder, 'f' file, 'l' symlink), u8 method (0 stored, 1 zlib),
 *          u32 mode, u32 path length, u64 size, u64 stored size, path, stored bytes
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <dirent.h>
#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

#define MAGIC "PSTKPAY1"
#define TRAILER_SIZE 88
#define KEY_SIZE 64
#define HEADER_SIZE 26
#define CHUNK (1 << 18)
#define PROGRAM "pocketstack"
#define COMPLETE ".complete"

static const char *self_path = "/proc/self/exe";

static void die(const char *what, const char *detail) {
    fprintf(stderr, "pocketstack: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(70); /* EX_SOFTWARE */
}

static void die_errno(const char *what, const char *path) {
    char message[PATH_MAX + 256];
    snprintf(message, sizeof message, "%s (%s)", path, strerror(errno));
    die(what, message);
}

static uint64_t u64_at(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t u32_at(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void read_exact(int fd, void *buffer, size_t size, off_t offset) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread(fd, (char *)buffer + done, size - done, offset + (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("the binary is truncated or unreadable", self_path);
        done += (size_t)n;
    }
}

static void write_all(int fd, const void *buffer, size_t size, const char *path) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, (const char *)buffer + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die_errno("cannot write the unpacked program", path);
        done += (size_t)n;
    }
}

/* A folder we may trust to hold programs we will run: ours, and writable by nobody else. */
static void ensure_private_dir(const char *path) {
    if (mkdir(path, 0700) != 0 && errno != EEXIST) die_errno("cannot create the cache folder", path);
    struct stat st;
    if (lstat(path, &st) != 0) die_errno("cannot inspect the cache folder", path);
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
        die("refusing a cache folder that is not a private folder of this user", path);
}

static void make_parents(const char *path) {
    char buffer[PATH_MAX];
    snprintf(buffer, sizeof buffer, "%s", path);
    for (char *p = buffer + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buffer, 0700) != 0 && errno != EEXIST) die_errno("cannot create the cache folder", buffer);
        *p = '/';
    }
}

static void cache_root(char *out, size_t size) {
    const char *explicit_dir = getenv("POCKETSTACK_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    const char *tmp = getenv("TMPDIR");
    if (explicit_dir && *explicit_dir == '/')
        snprintf(out, size, "%s", explicit_dir);
    else if (xdg && *xdg == '/')
        snprintf(out, size, "%s/pocketstack", xdg);
    else if (home && *home == '/' && access(home, W_OK) == 0)
        snprintf(out, size, "%s/.cache/pocketstack", home);
    else
        snprintf(out, size, "%s/pocketstack-%u", (tmp && *tmp == '/') ? tmp : "/tmp", (unsigned)geteuid());
    make_parents(out);
    ensure_private_dir(out);
}

static int is_safe_relative(const char *path) {
    if (path[0] == '\0' || path[0] == '/') return 0;
    for (const char *p = path; *p;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += len + (end ? 1 : 0);
        if (!end) break;
    }
    return 1;
}

static void copy_stored(int in, off_t offset, uint64_t size, int out, const char *path) {
    static char buffer[CHUNK];
    while (size > 0) {
        size_t n = size < CHUNK ? (size_t)size : CHUNK;
        read_exact(in, buffer, n, offset);
        write_all(out, buffer, n, path);
        offset += (off_t)n;
        size -= n;
    }
}

static void inflate_stored(int in, off_t offset, uint64_t stored, uint64_t size, int out, const char *path) {
#ifdef HAVE_ZLIB
    static unsigned char input[CHUNK], output[CHUNK];
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) die("zlib cannot start", path);
    uint64_t written = 0;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        if (z.avail_in == 0) {
            if (stored == 0) die("the payload is corrupt (stream ends early)", path);
            size_t n = stored < CHUNK ? (size_t)stored : CHUNK;
            read_exact(in, input, n, offset);
            offset += (off_t)n;
            stored -= n;
            z.next_in = input;
            z.avail_in = (uInt)n;
        }
        z.next_out = output;
        z.avail_out = CHUNK;
        status = inflate(&z, Z_NO_FLUSH);
        if (status != Z_OK && status != Z_STREAM_END) die("the payload is corrupt", path);
        size_t produced = CHUNK - z.avail_out;
        write_all(out, output, produced, path);
        written += produced;
    }
    inflateEnd(&z);
    if (written != size) die("the payload is corrupt (size mismatch)", path);
#else
    (void)in; (void)offset; (void)stored; (void)size; (void)out;
    die("this launcher was built without zlib but the payload is compressed", path);
#endif
}

static void unpack(int self, off_t offset, uint64_t payload_size, const char *target) {
    off_t end = offset + (off_t)payload_size;
    unsigned char header[HEADER_SIZE];
    char relative[PATH_MAX], full[PATH_MAX * 2];
    while (offset < end) {
        read_exact(self, header, HEADER_SIZE, offset);
        offset += HEADER_SIZE;
        char kind = (char)header[0];
        int method = header[1];
        mode_t mode = (mode_t)(u32_at(header + 2) & 0777);
        uint32_t path_length = u32_at(header + 6);
        uint64_t size = u64_at(header + 10), stored = u64_at(header + 18);
        if (path_length == 0 || path_length >= PATH_MAX) die("the payload is corrupt (path length)", NULL);
        read_exact(self, relative, path_length, offset);
        relative[path_length] = '\0';
        offset += path_length;
        if (!is_safe_relative(relative)) die("the payload names an unsafe path", relative);
        snprintf(full, sizeof full, "%s/%s", target, relative);
        if (kind == 'd') {
            if (mkdir(full, 0700) != 0 && errno != EEXIST) die_errno("cannot unpack", full);
        } else if (kind == 'l') {
            char link_target[PATH_MAX];
            if (stored >= PATH_MAX) die("the payload is corrupt (link)", relative);
            read_exact(self, link_target, (size_t)stored, offset);
            link_target[stored] = '\0';
            if (link_target[0] == '/' || strstr(link_target, "..")) die("the payload names an unsafe link", relative);
            if (symlink(link_target, full) != 0) die_errno("cannot unpack", full);
        } else if (kind == 'f') {
            int out = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (out < 0) die_errno("cannot unpack", full);
            if (method == 0) copy_stored(self, offset, stored, out, full);
            else inflate_stored(self, offset, stored, size, out, full);
            if (fchmod(out, mode & 0755) != 0 || close(out) != 0) die_errno("cannot unpack", full);
        } else {
            die("the payload is corrupt (entry kind)", relative);
        }
        offset += (off_t)stored;
    }
}

static void remove_tree(const char *path) {
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *entry;
        char child[PATH_MAX * 2];
        while ((entry = readdir(dir)) != NULL) {
            if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, "..")) continue;
            snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
            struct stat st;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(child);
            else unlink(child);
        }
        closedir(dir);
    }
    rmdir(path);
}

static int is_complete(const char *folder, const char *key) {
    char marker[PATH_MAX + 32], seen[KEY_SIZE];
    snprintf(marker, sizeof marker, "%s/%s", folder, COMPLETE);
    int fd = open(marker, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, seen, KEY_SIZE);
    close(fd);
    return n == KEY_SIZE && memcmp(seen, key, KEY_SIZE) == 0;
}

int main(int argc, char **argv) {
    (void)argc;
    int self = open(self_path, O_RDONLY | O_CLOEXEC);
    if (self < 0) die_errno("cannot read its own file", self_path);
    off_t file_size = lseek(self, 0, SEEK_END);
    if (file_size < TRAILER_SIZE) die("the binary has no payload", self_path);
    unsigned char trailer[TRAILER_SIZE];
    read_exact(self, trailer, TRAILER_SIZE, file_size - TRAILER_SIZE);
    if (memcmp(trailer, MAGIC, 8) != 0) die("the binary has no payload (was it built by make binary?)", NULL);
    off_t payload_offset = (off_t)u64_at(trailer + 8);
    uint64_t payload_size = u64_at(trailer + 16);
    char key[KEY_SIZE + 1];
    memcpy(key, trailer + 24, KEY_SIZE);
    key[KEY_SIZE] = '\0';
    for (int i = 0; i < KEY_SIZE; i++)
        if (!strchr("0123456789abcdef", key[i])) die("the binary's trailer is corrupt", NULL);
    if (payload_offset + (off_t)payload_size > file_size - TRAILER_SIZE) die("the binary is truncated", NULL);

    char root[PATH_MAX], folder[PATH_MAX + KEY_SIZE + 16], program[PATH_MAX * 2];
    cache_root(root, sizeof root);
    snprintf(folder, sizeof folder, "%s/%.16s", root, key);
    if (!is_complete(folder, key)) {
        char staging[PATH_MAX * 2], marker[PATH_MAX * 2];
        snprintf(staging, sizeof staging, "%s/.unpacking-%.16s-%ld", root, key, (long)getpid());
        remove_tree(staging);
        if (mkdir(staging, 0700) != 0) die_errno("cannot create the cache folder", staging);
        unpack(self, payload_offset, payload_size, staging);
        snprintf(marker, sizeof marker, "%s/%s", staging, COMPLETE);
        int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) die_errno("cannot unpack", marker);
        write_all(fd, key, KEY_SIZE, marker);
        if (fsync(fd) != 0 || close(fd) != 0) die_errno("cannot unpack", marker);
        if (rename(staging, folder) != 0) {
            /* Another first launch won the race (or a stale incomplete folder is in the way). */
            if (is_complete(folder, key)) {
                remove_tree(staging);
            } else {
                remove_tree(folder);
                if (rename(staging, folder) != 0) die_errno("cannot move the unpacked build into place", folder);
            }
        }
    }
    close(self);
    snprintf(program, sizeof program, "%s/%s", folder, PROGRAM);
    execv(program, argv);
    die_errno("cannot start the unpacked program", program);
    return 70;
}
