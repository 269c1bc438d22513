#include "CCurlShim.h"
#include <dlfcn.h>

CURLcode ccurl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
CURLcode ccurl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
CURLcode ccurl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
CURLcode ccurl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
CURLcode ccurl_setopt_blob(CURL *h, CURLoption o, const void *data, size_t length) {
    struct curl_blob blob;
    blob.data = (void *)data;
    blob.len = length;
    blob.flags = CURL_BLOB_COPY; /* libcurl keeps its own copy: the caller's buffer may go */
    return curl_easy_setopt(h, o, &blob);
}
CURLcode ccurl_setopt_write_function(CURL *h, curl_write_callback cb) { return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb); }
CURLcode ccurl_setopt_header_function(CURL *h, curl_write_callback cb) { return curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cb); }
CURLcode ccurl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
CURLcode ccurl_getinfo_pointer(CURL *h, CURLINFO i, void **v) { return curl_easy_getinfo(h, i, v); }
CURLMcode ccurl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }
CURLcode ccurl_setopt_xferinfo_function(CURL *h, curl_xferinfo_callback cb) { return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, cb); }

/* OpenSSL's SSL_CTX_ctrl, found in the libssl libcurl already loaded (no OpenSSL headers or link needed). */
typedef long (*ccurl_ssl_ctx_ctrl)(void *ctx, int cmd, long larg, void *parg);

static CURLcode ccurl_release_buffers(CURL *curl, void *ssl_ctx, void *user) {
    (void)curl;
    (void)user;
    ccurl_ssl_ctx_ctrl ctrl = (ccurl_ssl_ctx_ctrl)dlsym(RTLD_DEFAULT, "SSL_CTX_ctrl");
    /* SSL_CTRL_MODE (33), SSL_MODE_RELEASE_BUFFERS (0x10): an idle connection gives its read and write buffers back */
    if (ctrl) ctrl(ssl_ctx, 33, 0x10L, 0);
    return CURLE_OK;
}

CURLcode ccurl_setopt_release_tls_buffers(CURL *h) {
    return curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ccurl_release_buffers);
}
