/*
 * otaforge host layer: esp_http_client. The emulator makes the request (TLS trusting only
 * cert_pem when it is set, as mbedTLS does); the body is read from it piece by piece.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "esp_http_client.h"
#include "esp_log.h"
#include "otaforge_rpc.h"

static const char *TAG = "HTTP_CLIENT";

#define MAX_HEADERS 32

typedef struct {
    char *key;
    char *value;
} header_t;

struct esp_http_client {
    char *url;
    esp_http_client_method_t method;
    int timeout_ms;
    char *cert_pem;
    bool skip_cn;
    char *common_name;
    bool follow_redirects;
    int max_redirects;
    header_t headers[MAX_HEADERS];
    header_t response[MAX_HEADERS];
    const char *post_data;
    int post_len;
    char *body;
    size_t body_len;
    int64_t stream;
    int status;
    int64_t content_length;
    int64_t range_total;
    bool chunked;
    bool eof;
    int64_t data_read;
    http_event_handle_cb event_handler;
    void *user_data;
    esp_http_client_transport_t transport;
};

static const char *METHODS[HTTP_METHOD_MAX] = {
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE",
    "OPTIONS", "COPY", "MOVE", "LOCK", "UNLOCK", "PROPFIND", "PROPPATCH", "MKCOL", "REPORT",
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void dispatch(esp_http_client_handle_t client, esp_http_client_event_id_t id, void *data,
                     int len, char *key, char *value)
{
    if (client->event_handler == NULL) {
        return;
    }
    esp_http_client_event_t evt = {
        .event_id = id, .client = client, .data = data, .data_len = len,
        .user_data = client->user_data, .header_key = key, .header_value = value,
    };
    client->event_handler(&evt);
}

static char *build_url(const esp_http_client_config_t *config)
{
    if (config->url != NULL) {
        return strdup(config->url);
    }
    if (config->host == NULL) {
        return NULL;
    }
    bool tls = config->transport_type == HTTP_TRANSPORT_OVER_SSL;
    int port = config->port != 0 ? config->port : (tls ? 443 : 80);
    char *url = NULL;
    if (asprintf(&url, "%s://%s:%d%s%s%s", tls ? "https" : "http", config->host, port,
                 config->path != NULL ? config->path : "/", config->query != NULL ? "?" : "",
                 config->query != NULL ? config->query : "") < 0) {
        return NULL;
    }
    return url;
}

esp_http_client_handle_t esp_http_client_init(const esp_http_client_config_t *config)
{
    if (config == NULL) {
        return NULL;
    }
    esp_http_client_handle_t client = calloc(1, sizeof(*client));
    if (client == NULL) {
        return NULL;
    }
    client->url = build_url(config);
    if (client->url == NULL) {
        ESP_LOGE(TAG, "Error parse url (null)");
        free(client);
        return NULL;
    }
    client->method = config->method;
    client->timeout_ms = config->timeout_ms != 0 ? config->timeout_ms : 5000;
    client->cert_pem = dup_or_null(config->cert_pem);
    client->skip_cn = config->skip_cert_common_name_check;
    client->common_name = dup_or_null(config->common_name);
    client->follow_redirects = !config->disable_auto_redirect;
    client->max_redirects = config->max_redirection_count != 0 ? config->max_redirection_count : 10;
    client->event_handler = config->event_handler;
    client->user_data = config->user_data;
    client->stream = -1;
    client->content_length = -1;
    client->range_total = -1;
    client->transport = strncmp(client->url, "https:", 6) == 0 ? HTTP_TRANSPORT_OVER_SSL
                                                                : HTTP_TRANSPORT_OVER_TCP;
    esp_http_client_set_header(client, "User-Agent",
                               config->user_agent != NULL ? config->user_agent
                                                          : "ESP32 HTTP Client/1.0");
    return client;
}

static header_t *find_header(header_t *list, const char *key)
{
    for (int i = 0; i < MAX_HEADERS; i++) {
        if (list[i].key != NULL && strcasecmp(list[i].key, key) == 0) {
            return &list[i];
        }
    }
    return NULL;
}

static void clear_headers(header_t *list)
{
    for (int i = 0; i < MAX_HEADERS; i++) {
        free(list[i].key);
        free(list[i].value);
        list[i].key = NULL;
        list[i].value = NULL;
    }
}

esp_err_t esp_http_client_set_header(esp_http_client_handle_t client, const char *key,
                                     const char *value)
{
    if (client == NULL || key == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (value == NULL) {
        return esp_http_client_delete_header(client, key);
    }
    header_t *h = find_header(client->headers, key);
    for (int i = 0; h == NULL && i < MAX_HEADERS; i++) {
        if (client->headers[i].key == NULL) {
            h = &client->headers[i];
            h->key = strdup(key);
        }
    }
    if (h == NULL) {
        return ESP_ERR_NO_MEM;
    }
    free(h->value);
    h->value = strdup(value);
    return ESP_OK;
}

esp_err_t esp_http_client_get_header(esp_http_client_handle_t client, const char *key,
                                     char **value)
{
    if (client == NULL || key == NULL || value == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    header_t *h = find_header(client->headers, key);
    *value = h != NULL ? h->value : NULL;
    return ESP_OK;
}

esp_err_t esp_http_client_delete_header(esp_http_client_handle_t client, const char *key)
{
    if (client == NULL || key == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    header_t *h = find_header(client->headers, key);
    if (h != NULL) {
        free(h->key);
        free(h->value);
        h->key = NULL;
        h->value = NULL;
    }
    return ESP_OK;
}

esp_err_t esp_http_client_set_url(esp_http_client_handle_t client, const char *url)
{
    if (client == NULL || url == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    free(client->url);
    client->url = strdup(url);
    return ESP_OK;
}

esp_err_t esp_http_client_get_url(esp_http_client_handle_t client, char *url, const int len)
{
    if (client == NULL || url == NULL || len <= 0) {
        return ESP_ERR_INVALID_ARG;
    }
    snprintf(url, (size_t)len, "%s", client->url);
    return ESP_OK;
}

esp_err_t esp_http_client_set_post_field(esp_http_client_handle_t client, const char *data,
                                         int len)
{
    if (client == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    client->post_data = data;
    client->post_len = data != NULL ? len : 0;
    return ESP_OK;
}

esp_err_t esp_http_client_set_method(esp_http_client_handle_t client,
                                     esp_http_client_method_t method)
{
    if (client == NULL || method >= HTTP_METHOD_MAX) {
        return ESP_ERR_INVALID_ARG;
    }
    client->method = method;
    return ESP_OK;
}

esp_err_t esp_http_client_set_timeout_ms(esp_http_client_handle_t client, int timeout_ms)
{
    if (client == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    client->timeout_ms = timeout_ms;
    return ESP_OK;
}

esp_err_t esp_http_client_get_user_data(esp_http_client_handle_t client, void **data)
{
    if (client == NULL || data == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    *data = client->user_data;
    return ESP_OK;
}

esp_err_t esp_http_client_set_user_data(esp_http_client_handle_t client, void *data)
{
    if (client == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    client->user_data = data;
    return ESP_OK;
}

esp_http_client_transport_t esp_http_client_get_transport_type(esp_http_client_handle_t client)
{
    return client != NULL ? client->transport : HTTP_TRANSPORT_UNKNOWN;
}

esp_err_t esp_http_client_open(esp_http_client_handle_t client, int write_len)
{
    if (client == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    esp_http_client_close(client);
    (void)write_len;
    free(client->body);
    client->body = NULL;
    client->body_len = 0;
    dispatch(client, HTTP_EVENT_ON_CONNECTED, NULL, 0, NULL, NULL);
    return ESP_OK;
}

int esp_http_client_write(esp_http_client_handle_t client, const char *buffer, int len)
{
    if (client == NULL || buffer == NULL || len < 0) {
        return -1;
    }
    char *body = realloc(client->body, client->body_len + (size_t)len);
    if (body == NULL) {
        return -1;
    }
    memcpy(body + client->body_len, buffer, (size_t)len);
    client->body = body;
    client->body_len += (size_t)len;
    return len;
}

static char *headers_text(esp_http_client_handle_t client)
{
    size_t size = 1;
    for (int i = 0; i < MAX_HEADERS; i++) {
        if (client->headers[i].key != NULL) {
            size += strlen(client->headers[i].key) + strlen(client->headers[i].value) + 3;
        }
    }
    char *text = calloc(1, size);
    if (text == NULL) {
        return NULL;
    }
    for (int i = 0; i < MAX_HEADERS; i++) {
        if (client->headers[i].key != NULL) {
            strcat(text, client->headers[i].key);
            strcat(text, ": ");
            strcat(text, client->headers[i].value);
            strcat(text, "\n");
        }
    }
    return text;
}

static void parse_response_headers(esp_http_client_handle_t client, const char *text, size_t n)
{
    clear_headers(client->response);
    int slot = 0;
    const char *end = text + n;
    while (text < end && slot < MAX_HEADERS) {
        const char *nl = memchr(text, '\n', (size_t)(end - text));
        const char *line_end = nl != NULL ? nl : end;
        const char *colon = memchr(text, ':', (size_t)(line_end - text));
        if (colon != NULL) {
            client->response[slot].key = strndup(text, (size_t)(colon - text));
            const char *v = colon + 1;
            while (v < line_end && *v == ' ') {
                v++;
            }
            client->response[slot].value = strndup(v, (size_t)(line_end - v));
            dispatch(client, HTTP_EVENT_ON_HEADER, NULL, 0, client->response[slot].key,
                     client->response[slot].value);
            slot++;
        }
        text = line_end + 1;
    }
}

int64_t esp_http_client_fetch_headers(esp_http_client_handle_t client)
{
    if (client == NULL) {
        return ESP_FAIL;
    }
    char *headers = headers_text(client);
    if (headers == NULL) {
        return ESP_FAIL;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_HTTP_REQUEST);
    fw_put_str(&msg, METHODS[client->method]);
    fw_put_str(&msg, client->url);
    fw_put_str(&msg, headers);
    fw_put_bytes(&msg, client->body, client->body_len);
    fw_put_str(&msg, client->cert_pem);
    fw_put_int(&msg, client->timeout_ms);
    fw_put_int(&msg, client->follow_redirects ? client->max_redirects : 0);
    fw_put_int(&msg, client->skip_cn);
    fw_put_str(&msg, client->common_name);
    free(headers);
    dispatch(client, HTTP_EVENT_HEADERS_SENT, NULL, 0, NULL, NULL);
    esp_err_t err = fw_call(&msg, &reply);
    if (err != ESP_OK) {
        fw_reply_free(&reply);
        ESP_LOGE(TAG, "Connection failed (%s)", esp_err_to_name(err));
        dispatch(client, HTTP_EVENT_ERROR, NULL, 0, NULL, NULL);
        return ESP_FAIL;
    }
    client->status = (int)fw_get_int(&reply);
    client->content_length = fw_get_int(&reply);
    client->range_total = fw_get_int(&reply);
    client->chunked = fw_get_int(&reply) != 0;
    client->stream = fw_get_int(&reply);
    size_t n = 0;
    const uint8_t *text = fw_get_bytes(&reply, &n);
    parse_response_headers(client, (const char *)text, n);
    char url[1024];
    fw_get_str(&reply, url, sizeof(url));
    if (url[0] != '\0') {
        esp_http_client_set_url(client, url);
    }
    fw_reply_free(&reply);
    client->eof = false;
    client->data_read = 0;
    dispatch(client, HTTP_EVENT_ON_HEADERS_COMPLETE, NULL, 0, NULL, NULL);
    return client->content_length >= 0 ? client->content_length : 0;
}

bool esp_http_client_is_chunked_response(esp_http_client_handle_t client)
{
    return client != NULL && client->chunked;
}

int esp_http_client_read(esp_http_client_handle_t client, char *buffer, int len)
{
    if (client == NULL || buffer == NULL || len < 0) {
        return ESP_FAIL;
    }
    if (client->stream < 0 || client->eof || len == 0) {
        return 0;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_HTTP_READ);
    fw_put_int(&msg, client->stream);
    fw_put_int(&msg, len);
    esp_err_t err = fw_call(&msg, &reply);
    size_t got = 0;
    const uint8_t *data = fw_get_bytes(&reply, &got);
    if (err == ESP_OK && got > 0) {
        memcpy(buffer, data, got);
    }
    fw_reply_free(&reply);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_http_client_read: connection lost (%s)", esp_err_to_name(err));
        client->eof = true;
        return ESP_FAIL;
    }
    if (got == 0) {
        client->eof = true;
        return 0;
    }
    client->data_read += (int64_t)got;
    return (int)got;
}

int esp_http_client_read_response(esp_http_client_handle_t client, char *buffer, int len)
{
    int total = 0;
    while (total < len) {
        int r = esp_http_client_read(client, buffer + total, len - total);
        if (r <= 0) {
            return r < 0 && total == 0 ? r : total;
        }
        total += r;
    }
    return total;
}

esp_err_t esp_http_client_flush_response(esp_http_client_handle_t client, int *len)
{
    char buf[512];
    int total = 0;
    int r;
    while ((r = esp_http_client_read(client, buf, sizeof(buf))) > 0) {
        total += r;
    }
    if (len != NULL) {
        *len = total;
    }
    return r < 0 ? ESP_FAIL : ESP_OK;
}

bool esp_http_client_is_complete_data_received(esp_http_client_handle_t client)
{
    if (client == NULL) {
        return false;
    }
    if (client->chunked || client->content_length < 0) {
        return client->eof;
    }
    return client->data_read >= client->content_length;
}

int esp_http_client_get_status_code(esp_http_client_handle_t client)
{
    return client != NULL ? client->status : -1;
}

int64_t esp_http_client_get_content_length(esp_http_client_handle_t client)
{
    return client != NULL ? client->content_length : -1;
}

int64_t esp_http_client_get_content_range(esp_http_client_handle_t client)
{
    return client != NULL ? client->range_total : -1;
}

esp_err_t esp_http_client_close(esp_http_client_handle_t client)
{
    if (client == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (client->stream >= 0) {
        fw_call_ints(FW_OP_HTTP_CLOSE, 1, client->stream, 0);
        client->stream = -1;
        dispatch(client, HTTP_EVENT_DISCONNECTED, NULL, 0, NULL, NULL);
    }
    return ESP_OK;
}

esp_err_t esp_http_client_perform(esp_http_client_handle_t client)
{
    if (client == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    esp_err_t err = esp_http_client_open(client, client->post_len);
    if (err == ESP_OK && client->post_len > 0 &&
            esp_http_client_write(client, client->post_data, client->post_len) < 0) {
        err = ESP_ERR_HTTP_WRITE_DATA;
    }
    if (err == ESP_OK && esp_http_client_fetch_headers(client) < 0) {
        err = ESP_ERR_HTTP_CONNECT;
    }
    char buf[DEFAULT_HTTP_BUF_SIZE];
    while (err == ESP_OK && client->method != HTTP_METHOD_HEAD) {
        int r = esp_http_client_read(client, buf, sizeof(buf));
        if (r < 0) {
            err = ESP_ERR_HTTP_CONNECTION_CLOSED;
        } else if (r == 0) {
            break;
        } else {
            dispatch(client, HTTP_EVENT_ON_DATA, buf, r, NULL, NULL);
        }
    }
    if (err == ESP_OK) {
        dispatch(client, HTTP_EVENT_ON_FINISH, NULL, 0, NULL, NULL);
    }
    esp_http_client_close(client);
    return err;
}

esp_err_t esp_http_client_cleanup(esp_http_client_handle_t client)
{
    if (client == NULL) {
        return ESP_FAIL;
    }
    esp_http_client_close(client);
    clear_headers(client->headers);
    clear_headers(client->response);
    free(client->url);
    free(client->cert_pem);
    free(client->common_name);
    free(client->body);
    free(client);
    return ESP_OK;
}
