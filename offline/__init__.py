"""offline: the bundle that carries the workbook across the air gap (`make bundle`).

`python -m offline.build` makes dist/byok-ceremony-<version>-offline.tar on a connected machine;
`install.sh` inside it installs the workbook on the offline one without any network.
"""
