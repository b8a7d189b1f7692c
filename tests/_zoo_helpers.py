"""A file server on 127.0.0.1 and zoo entries whose caffemodel it serves: download tests without the internet."""

import dataclasses
import http.server
import threading

from keras_fcn import zoo
from keras_fcn.zoo import registry
from _caffe_helpers import caffe_fcn_blobs, protobuf_caffemodel


class FileServer:
    """Serves `files` (path -> bytes) over HTTP; paths in `truncated` send half their bytes."""

    def __init__(self):
        self.files, self.truncated, self.requests = {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data = server.files[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if self.path in server.truncated else data)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def add(self, path, data):
        self.files[path] = data
        return self.url(path)

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


def serve_blobs(server, monkeypatch, name, blobs, legacy=False):
    """Serves `blobs` (name -> (type, arrays)) as entry `name`'s caffemodel, its URL first in the entry's."""
    data = protobuf_caffemodel([(key, kind, arrays) for key, (kind, arrays) in blobs.items()], legacy=legacy)
    url = server.add(f"/{name}.caffemodel", data)
    entries = [zoo.get(other) for other in zoo.available()]
    served = [dataclasses.replace(e, urls=(url,) + e.urls) if e.name == name else e for e in entries]
    monkeypatch.setattr(zoo, "REGISTRY", registry.Registry(served))
    return blobs


def serve_caffemodel_entry(server, monkeypatch, name, num_classes, stride, legacy=False):
    """Serves random blobs of the reference FCN as entry `name`'s caffemodel."""
    return serve_blobs(server, monkeypatch, name, caffe_fcn_blobs(num_classes, stride), legacy)
