/* fsutil.h - file system primitives with the durability rule built in
 *
 * The commit rule for anything we acknowledge: write, flush, fsync the file, rename it
 * to its final name, fsync the directory. These helpers are the only place that rule is
 * spelled out.
 *
 * SECURITY: files are created with O_EXCL/O_NOFOLLOW where a name could be guessed and
 * with the narrowest mode that works.
 */
#ifndef ALKAID_FSUTIL_H
#define ALKAID_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* mkdir -p; existing directories are fine. 0, or -1 with errno. */
int fs_mkdirs(const char *path, mode_t mode);
/* fsync of a directory, so that a rename or link inside it is durable. */
int fs_fsync_dir(const char *path);
/* fsync of a directory shared between threads: a caller that made a change in path
 * waits until an fsync of path that started after its call has completed, so many
 * threads committing into the same directory at once share a few fsyncs (group commit)
 * instead of one each. */
int fs_fsync_dir_shared(const char *path);
/* Writes all of data to fd, retrying on EINTR and short writes. */
int fs_write_all(int fd, const void *data, size_t len);
/* Creates path with exactly data: a temporary name in the same directory, fsync,
 * rename, fsync of the directory. */
int fs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Copies the whole of src_fd (from offset 0) into dst_fd. */
int fs_copy_fd(int src_fd, int dst_fd);
/* Free bytes available to unprivileged users on the file system holding path;
 * UINT64_MAX if it cannot be told. */
uint64_t fs_free_space(const char *path);
/* The directory part of path, xmalloc'ed ("." if none). */
char *fs_dirname(const char *path);
/* Reads a whole (small) file, up to max bytes; xmalloc'ed and NUL-terminated. */
char *fs_read_file(const char *path, size_t max, size_t *len_r);

#endif
