/* SPDX-License-Identifier: Apache-2.0 */
/* pass: passes its request on unchanged, without a copy (pd_response_forward). */
#include <palladium/function.h>

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)req;
	(void)arg;
	return pd_response_forward(res);
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
