import os,re,sys
def graph(src):
    edges={}
    for root,_,files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'): continue
            p=os.path.join(root,f); rel=os.path.relpath(p,src)
            parts=rel[:-3].split(os.sep)
            top=parts[0]
            if top in ('lib','main'): continue
            txt='\n'.join(l for l in open(p).read().split('\n') if not l.strip().startswith('//'))
            # strip cfg(test) module tail roughly
            i=txt.find('#[cfg(test)]\nmod tests')
            if i>=0: txt=txt[:i]
            for m in re.findall(r'crate::(\w+)',txt):
                if m!=top: edges.setdefault(top,set()).add(m)
            # use crate::{a, b}
            for grp in re.findall(r'crate::\{([^}]*)\}',txt):
                for m in re.findall(r'(\w+)',grp):
                    if m!=top: edges.setdefault(top,set()).add(m)
    return edges
def cycles(edges):
    found=[]
    for a in edges:
        for b in edges[a]:
            if a in edges.get(b,()): 
                if (b,a) not in found: found.append((a,b))
    # longer cycles via DFS
    color={}
    stack=[]
    res=[]
    def dfs(u):
        color[u]=1; stack.append(u)
        for v in edges.get(u,()):
            if color.get(v)==1: res.append(stack[stack.index(v):]+[v])
            elif not color.get(v): dfs(v)
        stack.pop(); color[u]=2
    for u in list(edges):
        if not color.get(u): dfs(u)
    return res
for src in sys.argv[1:]:
    e=graph(src)
    c=cycles(e)
    print(src, 'cycles:', c if c else 'none')
