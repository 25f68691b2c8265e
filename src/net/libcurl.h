// libcurl, opened on the first HTTP request (util/shared_library.h says why).
#pragma once

#include "util/shared_library.h"

// The type-checking macros of curl.h would shadow the members below.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

namespace ik::net {

#define IK_LIBCURL_FUNCTIONS(X)                                                                        \
    X(curl_easy_cleanup) X(curl_easy_getinfo) X(curl_easy_init) X(curl_easy_perform) X(curl_easy_setopt) \
    X(curl_easy_strerror) X(curl_free) X(curl_global_init_mem) X(curl_slist_append) X(curl_slist_free_all)  \
    X(curl_url) X(curl_url_cleanup) X(curl_url_get) X(curl_url_set)

struct Libcurl {
    IK_LIBCURL_FUNCTIONS(IK_FUNCTION_POINTER)
};

// Loads libcurl.so.4 on first use; throws ik::Error(provider) naming the package when it is missing.
const Libcurl& libcurl();

}  // namespace ik::net
