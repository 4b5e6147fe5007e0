throw new Error("this extension is broken on purpose");
