/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reason phrase of an HTTP status (RFC 9110), for the HTTP/1 status line. One list
 * for the ingress and bench/knative's HTTP adapter; unknown codes get their class's name.
 */
#ifndef PD_COMMON_HTTP_STATUS_H
#define PD_COMMON_HTTP_STATUS_H

static inline const char *pd_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 418: return "I'm a teapot";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	switch (status / 100) {
	case 2: return "OK";
	case 3: return "Redirection";
	case 4: return "Client Error";
	default: return "Server Error";
	}
}

#endif
