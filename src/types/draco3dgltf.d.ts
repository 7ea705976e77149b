// draco3dgltf ships no declarations: the two factories glTF-Transform's Draco extension takes the modules of.
declare module 'draco3dgltf' {
  const draco3d: {
    createEncoderModule(options: object): Promise<unknown>;
    createDecoderModule(options: object): Promise<unknown>;
  };
  export default draco3d;
}
