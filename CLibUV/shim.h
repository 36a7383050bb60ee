#ifndef SWIFT_MOTAN_CLIBUV_SHIM_H
#define SWIFT_MOTAN_CLIBUV_SHIM_H

#include <uv.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

/* Swift cannot see the errno-style macro constants that libuv builds from expressions. */
static inline int cmotan_uv_eof(void) { return UV_EOF; }
static inline int cmotan_uv_ecanceled(void) { return UV_ECANCELED; }
static inline int cmotan_uv_econnrefused(void) { return UV_ECONNREFUSED; }
static inline int cmotan_uv_etimedout(void) { return UV_ETIMEDOUT; }
static inline int cmotan_uv_eagain(void) { return UV_EAGAIN; }

/* SO_REUSEPORT on the socket libuv created, before bind: libuv 1.44 has no flag for it. */
static inline int cmotan_set_reuseport(uv_os_sock_t fd) {
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
}

/* Names the loop thread so it shows in ps/top/gdb. */
static inline void cmotan_set_thread_name(const char *name) {
#if defined(__linux__)
    prctl(PR_SET_NAME, name, 0, 0, 0);
#else
    (void)name;
#endif
}

#endif
