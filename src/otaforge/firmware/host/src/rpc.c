/*
 * otaforge host layer: the framed pipe to the emulator (see otaforge_rpc.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otaforge_rpc.h"

static int s_in_fd = -1;
static int s_out_fd = -1;
static int64_t s_last_time_us;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

static void grow(fw_msg_t *msg, size_t extra)
{
    if (msg->len + extra <= msg->cap) {
        return;
    }
    size_t cap = msg->cap ? msg->cap : 64;
    while (cap < msg->len + extra) {
        cap *= 2;
    }
    uint8_t *buf = realloc(msg->buf, cap);
    if (buf == NULL) {
        abort();
    }
    msg->buf = buf;
    msg->cap = cap;
}

static void put_le(fw_msg_t *msg, uint64_t value, int bytes)
{
    grow(msg, (size_t)bytes);
    for (int i = 0; i < bytes; i++) {
        msg->buf[msg->len++] = (uint8_t)(value >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++) {
        value |= (uint64_t)p[i] << (8 * i);
    }
    return value;
}

void fw_msg_begin(fw_msg_t *msg, fw_op_t op)
{
    memset(msg, 0, sizeof(*msg));
    put_le(msg, 0, 4);  /* length, filled in by send */
    put_le(msg, (uint64_t)op, 2);
}

void fw_put_int(fw_msg_t *msg, int64_t value)
{
    grow(msg, 1);
    msg->buf[msg->len++] = 'i';
    put_le(msg, (uint64_t)value, 8);
}

void fw_put_bytes(fw_msg_t *msg, const void *data, size_t len)
{
    grow(msg, 1);
    msg->buf[msg->len++] = 'b';
    put_le(msg, (uint64_t)len, 4);
    grow(msg, len);
    if (len > 0) {
        memcpy(msg->buf + msg->len, data, len);
    }
    msg->len += len;
}

void fw_put_str(fw_msg_t *msg, const char *text)
{
    fw_put_bytes(msg, text != NULL ? text : "", text != NULL ? strlen(text) : 0);
}

static void write_all(const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(s_out_fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            _exit(3);  /* the emulator went away: this "chip" has no power */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void read_all(uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(s_in_fd, p, n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            _exit(3);
        }
        p += r;
        n -= (size_t)r;
    }
}

static void send_locked(fw_msg_t *msg)
{
    uint32_t len = (uint32_t)(msg->len - 4);
    for (int i = 0; i < 4; i++) {
        msg->buf[i] = (uint8_t)(len >> (8 * i));
    }
    fflush(stdout);
    write_all(msg->buf, msg->len);
    free(msg->buf);
    msg->buf = NULL;
}

void fw_send(fw_msg_t *msg)
{
    pthread_mutex_lock(&s_lock);
    send_locked(msg);
    pthread_mutex_unlock(&s_lock);
}

esp_err_t fw_call(fw_msg_t *msg, fw_reply_t *reply)
{
    uint8_t head[4];
    pthread_mutex_lock(&s_lock);
    send_locked(msg);
    read_all(head, 4);
    size_t len = (size_t)get_le(head, 4);
    memset(reply, 0, sizeof(*reply));
    reply->buf = malloc(len > 0 ? len : 1);
    if (reply->buf == NULL) {
        abort();
    }
    read_all(reply->buf, len);
    pthread_mutex_unlock(&s_lock);
    reply->len = len;
    if (len < 12) {
        abort();
    }
    reply->err = (esp_err_t)(int32_t)get_le(reply->buf, 4);
    s_last_time_us = (int64_t)get_le(reply->buf + 4, 8);
    reply->pos = 12;
    return reply->err;
}

int64_t fw_get_int(fw_reply_t *reply)
{
    if (reply->pos + 9 > reply->len || reply->buf[reply->pos] != 'i') {
        return 0;
    }
    int64_t value = (int64_t)get_le(reply->buf + reply->pos + 1, 8);
    reply->pos += 9;
    return value;
}

const uint8_t *fw_get_bytes(fw_reply_t *reply, size_t *len)
{
    *len = 0;
    if (reply->pos + 5 > reply->len || reply->buf[reply->pos] != 'b') {
        return (const uint8_t *)"";
    }
    size_t n = (size_t)get_le(reply->buf + reply->pos + 1, 4);
    const uint8_t *data = reply->buf + reply->pos + 5;
    reply->pos += 5 + n;
    *len = n;
    return data;
}

void fw_get_str(fw_reply_t *reply, char *out, size_t size)
{
    size_t n = 0;
    const uint8_t *data = fw_get_bytes(reply, &n);
    if (size == 0) {
        return;
    }
    if (n >= size) {
        n = size - 1;
    }
    memcpy(out, data, n);
    out[n] = '\0';
}

void fw_reply_free(fw_reply_t *reply)
{
    free(reply->buf);
    reply->buf = NULL;
}

esp_err_t fw_call_ints(fw_op_t op, int nargs, int64_t a, int64_t b)
{
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, op);
    if (nargs > 0) {
        fw_put_int(&msg, a);
    }
    if (nargs > 1) {
        fw_put_int(&msg, b);
    }
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

int64_t fw_last_time_us(void)
{
    return s_last_time_us;
}

int fw_rpc_init(void)
{
    const char *fds = getenv("OTAFORGE_FW_FDS");
    if (fds == NULL || sscanf(fds, "%d,%d", &s_in_fd, &s_out_fd) != 2) {
        return 0;
    }
    return 1;
}
