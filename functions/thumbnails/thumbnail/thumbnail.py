"""Makes a 200x200 JPEG thumbnail of each uploaded image, in the bucket named by THUMBNAIL_BUCKET."""

import io
import os
import posixpath

import botocore.session
from PIL import Image, ImageOps, UnidentifiedImageError

from ripple.functions import Reject

SIZE = (200, 200)


def handle(event):
    obj = event.data
    s3 = botocore.session.get_session().create_client("s3", endpoint_url=os.environ["S3_ENDPOINT"],
                                                      region_name="us-east-1")
    original = s3.get_object(Bucket=obj["bucket"], Key=obj["key"])["Body"].read()
    try:
        image = Image.open(io.BytesIO(original))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise Reject(f"{obj['key']} is not an image Pillow can read: {exc}") from None
    thumbnail = ImageOps.pad(image.convert("RGB"), SIZE, color=(255, 255, 255))
    out = io.BytesIO()
    thumbnail.save(out, "JPEG", quality=85)
    name = posixpath.splitext(posixpath.basename(obj["key"]))[0]
    key = f"thumbnails/{name}.jpg"
    s3.put_object(Bucket=os.environ["THUMBNAIL_BUCKET"], Key=key, Body=out.getvalue(), ContentType="image/jpeg")
    print(f"{obj['key']} ({image.width}x{image.height}) → {key}", flush=True)
