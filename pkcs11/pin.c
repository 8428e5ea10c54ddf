/* pin.c - PIN sources: "file:/path" and "env:NAME" (the pin-source query attribute of RFC 7512 2.4).
 *
 * The PIN is read again each time a login is needed and wiped right after C_Login, so it never stays
 * in memory while the gateway runs. It is never logged and never copied into an error message. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pkcs11/internal.h"

/* Keeps the first line of buf[0..n) (without "\n" or "\r\n") and copies it to pin. */
static int pin_take_line(const char *src_desc, const char *buf, size_t n, char *pin, size_t cap,
                         size_t *len, char *err, size_t errlen)
{
    size_t l = 0;

    while (l < n && buf[l] != '\n' && buf[l] != '\0')
        l++;
    if (l > 0 && buf[l - 1] == '\r')
        l--;
    if (l == 0)
        return hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "pin source %s: empty PIN", src_desc);
    if (l >= cap)
        return hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "pin source %s: PIN longer than %zu bytes",
                        src_desc, cap - 1);
    memcpy(pin, buf, l);
    pin[l] = '\0';
    *len = l;
    return 0;
}

static int pin_read_file(const char *source, const char *path, char *pin, size_t cap, size_t *len,
                         char *err, size_t errlen)
{
    char buf[HSM_PIN_MAX + 2];
    struct stat st;
    size_t n = 0;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "pin source %s: %s", source, strerror(errno));
        goto out;
    }
    /* fstat on the opened file, not stat on the name: the mode we check is the file we read. */
    if (fstat(fd, &st) != 0) {
        rc = hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "pin source %s: %s", source, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "pin source %s: not a regular file", source);
        goto out;
    }
    if (st.st_mode & (S_IRGRP | S_IROTH)) {
        rc = hsm_errf(err, errlen, HSM_E_PIN_SOURCE,
                      "pin source %s: readable by group or others (mode %04o); run chmod 600 on it",
                      source, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    while (n < sizeof(buf)) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "pin source %s: %s", source, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (memchr(buf, '\n', n) != NULL)
            break;
    }
    rc = pin_take_line(source, buf, n, pin, cap, len, err, errlen);
out:
    hsm_wipe(buf, sizeof(buf));
    if (fd >= 0)
        close(fd);
    return rc;
}

int hsm_pin_read(const char *source, char *pin, size_t cap, size_t *len, char *err, size_t errlen)
{
    if (pin == NULL || len == NULL || cap < 2)
        return hsm_errf(err, errlen, HSM_E_ARG, "hsm_pin_read: no room for a PIN");
    pin[0] = '\0';
    *len = 0;
    if (source == NULL || source[0] == '\0')
        return hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "no pin source configured");
    if (strncmp(source, "file:", 5) == 0) {
        if (source[5] != '/')
            return hsm_errf(err, errlen, HSM_E_PIN_SOURCE,
                            "pin source %s: the file path must be absolute", source);
        return pin_read_file(source, source + 5, pin, cap, len, err, errlen);
    }
    if (strncmp(source, "env:", 4) == 0) {
        const char *v;

        if (source[4] == '\0')
            return hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "pin source %s: no variable name", source);
        v = getenv(source + 4);
        if (v == NULL)
            return hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "pin source %s: variable %s is not set",
                            source, source + 4);
        return pin_take_line(source, v, strlen(v), pin, cap, len, err, errlen);
    }
    /* Never echo the value: an operator may have pasted the PIN itself here by mistake. */
    return hsm_errf(err, errlen, HSM_E_PIN_SOURCE,
                    "pin source has an unknown scheme; use \"file:/path\" or \"env:NAME\"");
}
