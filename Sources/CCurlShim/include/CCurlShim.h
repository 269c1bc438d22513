#ifndef CCURLSHIM_H
#define CCURLSHIM_H
#include <curl/curl.h>

/* Fixed-signature wrappers for libcurl's variadic setopt/getinfo, which Swift cannot call. */
CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode ccurl_setopt_blob(CURL *handle, CURLoption option, const void *data, size_t length);
CURLcode ccurl_setopt_write_function(CURL *handle, curl_write_callback callback);
CURLcode ccurl_setopt_header_function(CURL *handle, curl_write_callback callback);
CURLcode ccurl_setopt_xferinfo_function(CURL *handle, curl_xferinfo_callback callback);
CURLcode ccurl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode ccurl_getinfo_pointer(CURL *handle, CURLINFO info, void **value);
CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

/* Idle TLS connections of this transfer release their OpenSSL buffers (SSL_MODE_RELEASE_BUFFERS): for long watches. */
CURLcode ccurl_setopt_release_tls_buffers(CURL *handle);
#endif
