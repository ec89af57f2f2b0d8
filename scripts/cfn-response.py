"""Stand in for CloudFormation's side of a custom-resource request on the emulator.

prepare EVENT OUT KEY: copies the request in EVENT to OUT with a ResponseURL
    pre-signed for bucket "cfn-responses", object KEY, on the emulator's S3.
show KEY: prints the response the function put there, one field a line.

AWS_ENDPOINT_URL must point at the emulator on 127.0.0.1.
"""

import json
import os
import sys

import boto3

BUCKET = "cfn-responses"


def s3_client():
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if not endpoint.startswith("http://127.0.0.1:"):
        sys.exit(f"AWS_ENDPOINT_URL must be the emulator on 127.0.0.1, got {endpoint}")
    return boto3.client("s3", endpoint_url=endpoint)


def prepare(event_path, out_path, key):
    s3 = s3_client()
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    with open(event_path) as source:
        event = json.load(source)
    event["ResponseURL"] = s3.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=600
    )
    with open(out_path, "w") as out:
        json.dump(event, out)


def show(key):
    body = s3_client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    response = json.loads(body)
    print(f"  response    {response['Status']}, PhysicalResourceId {response['PhysicalResourceId']}")
    print(f"  reason      {response.get('Reason')}")
    data = response.get("Data", {})
    width = max([12, *(len(name) + 1 for name in data)])
    for name, value in sorted(data.items()):
        print(f"  {name:<{width}}{value}")


def main():
    command, *arguments = sys.argv[1:]
    if command == "prepare":
        prepare(*arguments)
    elif command == "show":
        show(*arguments)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
