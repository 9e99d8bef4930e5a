# TLS to the broker (config BROKER_TLS, BROKER_CA). Imported by pmqtt only when TLS is on.
import ssl


def wrap(s, host, ca):
    """Wraps the connected socket s. With SSLContext (MicroPython 1.22+) the handshake runs
    non-blocking on pmqtt's first write, under its connect deadline; older firmware does it
    here, each step bounded by the socket's timeout. ca: a PEM (or DER) CA file, '' = no check."""
    if ca:
        if not hasattr(ssl, 'CERT_REQUIRED'):  # axTLS (ESP8266) cannot verify certificates
            raise OSError(95, "this firmware's ssl cannot verify certificates")
        with open(ca, 'rb') as f:
            ca = der(f.read())
    if hasattr(ssl, 'SSLContext'):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca:
            for d in ca:
                c.load_verify_locations(cadata=d)
            c.verify_mode = ssl.CERT_REQUIRED
        else:
            c.verify_mode = ssl.CERT_NONE
        s.setblocking(False)
        return c.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
    s.setblocking(True)  # old firmware: a blocking handshake, each step bounded by the timeout
    s.settimeout(10)
    if ca:
        return ssl.wrap_socket(s, server_hostname=host, cert_reqs=ssl.CERT_REQUIRED, cadata=ca[0])
    return ssl.wrap_socket(s, server_hostname=host)


def der(pem):
    """The certificates of a PEM file as DER (some mbedTLS builds cannot parse PEM); DER as is."""
    if pem[:5] != b'-----':
        return [pem]
    from binascii import a2b_base64
    return [a2b_base64(p.split(b'-----END')[0]) for p in pem.split(b'-----BEGIN CERTIFICATE-----')[1:]]
