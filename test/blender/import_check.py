"""Imports each file given (GLB through import_scene.gltf, an OBJ zip through import_scene.obj) into an empty
Blender scene and prints one JSON line per file: what Blender made of it. Run by test/blender.test.ts as
    blender -b --factory-startup --python-exit-code 1 --python import_check.py -- FILE...
Blender turns glTF's and OBJ's +Y up into its +Z up: a file's (x, y, z) is Blender's (x, -z, y) (the glTF
importer on the vertices, the OBJ importer by rotating the object), so dimensions are measured in world space."""
import json
import os
import sys
import tempfile
import traceback
import zipfile

import bpy

# Debian's Blender 3.4 glTF importer uses numpy.bool, which numpy 1.24 removed.
import numpy
numpy.bool = bool


def inspect(path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if path.endswith('.zip'):
        folder = tempfile.mkdtemp()
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folder)
        result = bpy.ops.import_scene.obj(filepath=os.path.join(folder, 'model.obj'))
    else:
        result = bpy.ops.import_scene.gltf(filepath=path)
    objects = list(bpy.context.scene.objects)
    meshes = [o for o in objects if o.type == 'MESH']
    report = {'file': os.path.basename(path), 'result': sorted(result), 'objects': len(objects), 'meshes': len(meshes)}
    if len(meshes) == 1:
        o = meshes[0]
        corners = [o.matrix_world @ v.co for v in o.data.vertices]
        report.update({
            'polygons': len(o.data.polygons),
            'triangles': sum(len(p.vertices) - 2 for p in o.data.polygons),
            'dimensions': [max(c[a] for c in corners) - min(c[a] for c in corners) for a in range(3)],
            'location': list(o.location),
            'min': [min(c[a] for c in corners) for a in range(3)],
            'max': [max(c[a] for c in corners) for a in range(3)],
        })
        materials = [slot.material for slot in o.material_slots if slot.material]
        nodes = [n for m in materials if m.use_nodes for n in m.node_tree.nodes]
        images = [n.image for n in nodes if n.type == 'TEX_IMAGE' and n.image]
        # Reading a pixel loads the image (headless Blender loads them lazily): a texture that cannot be read has no size.
        report['textures'] = [[i.size[0], i.size[1]] for i in images if len(i.pixels) > 0]
        report['vertexColours'] = len(o.data.color_attributes) > 0 and any(n.type == 'VERTEX_COLOR' for n in nodes)
        report['materials'] = len(materials)
    return report


for path in sys.argv[sys.argv.index('--') + 1:]:
    try:
        print('IMPORT ' + json.dumps(inspect(path)), flush=True)
    except Exception as err:  # one file's failure is reported, and the next file is still tried
        print('IMPORT ' + json.dumps({'file': os.path.basename(path), 'error': ''.join(traceback.format_exception_only(type(err), err)).strip()[:400]}), flush=True)
